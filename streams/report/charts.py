"""The report's sections: each a few plotly charts, a one-line reading in words under each, and
the numbers behind them as small tables. Input: `figures.Figures`; no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import plotly.graph_objects as go

from streams.report.figures import Figures

PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#9D755D")
HISTORY_ONLY = (
    "The live report shows the workers' current state only; this chart needs history "
    "(run `loyalty report EVENTS --rules FILE`)."
)


@dataclass(frozen=True)
class Chart:
    chart_id: str
    figure: go.Figure
    reading: str


@dataclass(frozen=True)
class Section:
    section_id: str
    title: str
    question: str  # what the shop asks, in its words
    charts: list[Chart]
    notes: list[str] = field(default_factory=list)  # sentences without a chart
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)


# ---- formatting -------------------------------------------------------------------------------


class Money:
    def __init__(self, currency: str, exponent: int) -> None:
        self.currency, self.exponent = currency, exponent
        self.per_major: int = pow(10, exponent)

    def __call__(self, minor: float) -> str:
        return f"{self.currency} {self.major(minor):,.{self.exponent}f}"

    def major(self, minor: float) -> float:
        return float(minor) / self.per_major


def percent(share: float | None) -> str:
    return "n/a" if share is None else f"{100 * share:.1f} %"


def _share(value: object) -> float | None:
    return None if pd.isna(value) else float(value)  # type: ignore[arg-type]


def signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}"


def _layout(figure: go.Figure, title: str, **axes: str) -> go.Figure:
    figure.update_layout(
        title={"text": title, "font": {"size": 15}},
        template="plotly_white",
        height=360,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        legend={"orientation": "h", "y": -0.2},
        colorway=list(PALETTE),
        **{f"{axis}_title": text for axis, text in axes.items()},
    )
    return figure


# ---- sections ---------------------------------------------------------------------------------


def revenue_section(figures: Figures, money: Money) -> Section:
    p = figures.pareto
    figure = go.Figure()
    figure.add_scatter(
        x=p.curve["customer_share"] * 100,
        y=p.curve["revenue_share"] * 100,
        mode="lines",
        name="customers, biggest spenders first",
        fill="tozeroy",
    )
    figure.add_scatter(
        x=[0, 100],
        y=[0, 100],
        mode="lines",
        name="every customer alike",
        line={"dash": "dot", "color": "#999"},
    )
    if p.top_share is not None:
        figure.add_scatter(
            x=[100 * TOP_FRACTION],
            y=[100 * p.top_share],
            mode="markers+text",
            text=[f"top 20 %: {percent(p.top_share)} of revenue"],
            textposition="bottom right",
            name="top 20 %",
            marker={"size": 10, "color": PALETTE[3]},
        )
    _layout(
        figure,
        "Share of net revenue by share of customers",
        xaxis="customers (%)",
        yaxis="net revenue (%)",
    )
    if p.top_share is None:
        reading = "No revenue yet: no customer has bought anything."
    else:
        reading = (
            f"The top 20 % of customers ({p.top_customers:,} of {p.buyers:,} buyers) brought "
            f"{percent(p.top_share)} of net revenue ({money(p.revenue_minor)} in all)."
        )
    return Section(
        "revenue",
        "Revenue concentration",
        "Which customers bring the revenue?",
        [Chart("chart-pareto", figure, reading)],
    )


TOP_FRACTION = 0.2


def cohort_section(figures: Figures) -> Section:
    c = figures.cohorts
    charts: list[Chart] = []
    notes: list[str] = []
    tables: list[tuple[str, pd.DataFrame]] = []
    repeat = (
        f"Repeat-purchase rate: {percent(c.repeat_rate)} of buyers ({c.repeaters:,} of "
        f"{c.buyers:,}) came back for a second visit."
    )
    if c.retention is not None and not c.retention.empty:
        retention = c.retention
        text = retention.map(lambda share: "" if pd.isna(share) else f"{100 * share:.0f} %")
        figure = go.Figure(
            go.Heatmap(
                z=retention.to_numpy() * 100,
                x=[str(col) for col in retention.columns],
                y=list(retention.index),
                text=text.to_numpy(),
                texttemplate="%{text}",
                colorscale="Blues",
                zmin=0,
                zmax=100,
                colorbar={"title": "%"},
                hovertemplate="cohort %{y}, month +%{x}: %{z:.1f} %<extra></extra>",
            )
        )
        _layout(
            figure,
            "Share of each first-purchase month still buying, by months since",
            xaxis="months since the first purchase",
            yaxis="cohort",
        )
        figure.update_yaxes(autorange="reversed", type="category")
        figure.update_layout(height=max(360, 40 + 22 * len(retention)))
        largest = str(c.sizes.idxmax())
        after = _share(retention.loc[largest, 1]) if 1 in retention.columns else None
        month_one = _share(retention[1].mean()) if 1 in retention.columns else None
        reading = (
            f"Cohort {largest} ({int(c.sizes[largest]):,} customers, the largest): "
            f"{percent(after)} bought again the month after their first purchase; over all "
            f"cohorts, {percent(month_one)} "
            "on average. " + repeat
        )
        charts.append(Chart("chart-cohorts", figure, reading))
        tables.append(("retention by cohort (share still buying)", retention.round(4)))
    else:
        notes.append(
            HISTORY_ONLY.replace("this chart", "the retention heatmap")
            if figures.report.history is None
            else "No purchase in this history: no cohort to follow."
        )
    figure = go.Figure(
        go.Bar(
            x=list(c.repeat_by_cohort.index),
            y=c.repeat_by_cohort * 100,
            marker_color=PALETTE[0],
            name="repeat rate",
        )
    )
    _layout(
        figure,
        "Repeat-purchase rate by first-purchase month",
        xaxis="cohort (first purchase)",
        yaxis="buyers with 2+ visits (%)",
    )
    figure.update_xaxes(type="category")
    charts.append(Chart("chart-repeat", figure, repeat))
    return Section(
        "cohorts", "Monthly cohorts", "Are first-time buyers coming back?", charts, notes, tables
    )


def activity_section(figures: Figures, money: Money) -> Section:
    a = figures.activity
    charts: list[Chart] = []
    notes: list[str] = []
    tables: list[tuple[str, pd.DataFrame]] = []
    if a.monthly is not None and not a.monthly.empty:
        monthly = a.monthly
        figure = go.Figure()
        figure.add_scatter(
            x=list(monthly.index),
            y=monthly["average_check_minor"].map(money.major),
            name=f"average check ({money.currency})",
            mode="lines+markers",
        )
        figure.add_scatter(
            x=list(monthly.index),
            y=monthly["visits_per_customer"],
            yaxis="y2",
            name="visits per active customer",
            mode="lines+markers",
        )
        _layout(
            figure,
            "Average check and visits per active customer, by month",
            xaxis="month",
            yaxis=f"average check ({money.currency})",
        )
        figure.update_layout(
            yaxis2={
                "title": "visits per customer",
                "overlaying": "y",
                "side": "right",
                "showgrid": False,
                "tickmode": "auto",
                "tickformat": ".2f",
            }
        )
        first, last = monthly.index[0], monthly.index[-1]
        reading = (
            f"Average check {money(monthly['average_check_minor'].iloc[-1])} in {last} "
            f"({money(monthly['average_check_minor'].iloc[0])} in {first}); "
            f"{monthly['visits_per_customer'].iloc[-1]:.2f} visits per active customer in "
            f"{last} (purchase totals before returns)."
        )
        charts.append(Chart("chart-check", figure, reading))
        tables.append(("by month", monthly.round(2)))
    if a.tiers_monthly is not None and a.stages_monthly is not None and len(a.tiers_monthly):
        for chart_id, frame, what in (
            ("chart-tiers", a.tiers_monthly, "tier"),
            ("chart-stages", a.stages_monthly, "stage"),
        ):
            figure = go.Figure()
            for column in frame.columns:
                figure.add_scatter(
                    x=list(frame.index),
                    y=frame[column],
                    name=str(column),
                    stackgroup="one",
                    mode="lines",
                )
            _layout(
                figure, f"Customers by {what} at each month's end", xaxis="month", yaxis="customers"
            )
            last = frame.iloc[-1]
            total = int(last.sum())
            shares = ", ".join(
                f"{name} {int(n):,} ({percent(n / total if total else None)})"
                for name, n in last.items()
            )
            reading = f"At the end of {frame.index[-1]}: {shares}."
            charts.append(Chart(chart_id, figure, reading))
            tables.append((f"customers by {what}", frame))
    else:
        for chart_id, series, what in (
            ("chart-tiers", a.tiers_now, "tier"),
            ("chart-stages", a.stages_now, "stage"),
        ):
            figure = go.Figure(
                go.Bar(x=list(series.index), y=series.to_numpy(), marker_color=PALETTE[0])
            )
            _layout(figure, f"Customers by {what} now", xaxis=what, yaxis="customers")
            total = int(series.sum())
            shares = ", ".join(
                f"{name} {int(n):,} ({percent(n / total if total else None)})"
                for name, n in series.items()
            )
            charts.append(Chart(chart_id, figure, f"Now: {shares}."))
        if figures.report.history is None:
            notes.append(
                HISTORY_ONLY.replace("this chart needs", "tiers, stages and checks over time need")
            )
    if a.tier_moves is not None and len(a.tier_moves):
        moves = a.tier_moves
        figure = go.Figure()
        figure.add_bar(x=list(moves.index), y=moves["up"], name="moves up", marker_color=PALETTE[2])
        figure.add_bar(
            x=list(moves.index), y=-moves["down"], name="moves down", marker_color=PALETTE[3]
        )
        figure.update_layout(barmode="relative")
        _layout(figure, "Tier moves per month (down below zero)", xaxis="month", yaxis="customers")
        reading = (
            f"{int(moves['up'].sum()):,} moves up and {int(moves['down'].sum()):,} down in all; "
            f"in {moves.index[-1]}: {int(moves['up'].iloc[-1]):,} up, "
            f"{int(moves['down'].iloc[-1]):,} down."
        )
        charts.append(Chart("chart-tier-moves", figure, reading))
    if a.average_check_minor is not None:
        notes.append(
            f"All time: net average check {money(a.average_check_minor)} (net spend after returns "
            f"per receipt), {a.visits_per_buyer:.2f} visits per buyer."
        )
    return Section(
        "activity",
        "Checks, visits, tiers and stages",
        "Are members buying more, and moving up the tiers?",
        charts,
        notes,
        tables,
    )


def feedback_section(figures: Figures, sla_hours: int) -> Section:
    f = figures.feedback
    charts: list[Chart] = []
    notes: list[str] = []
    tables: list[tuple[str, pd.DataFrame]] = []
    classes = f.classes_now
    answers = int(classes.sum())
    now = (
        f"NPS now {signed(f.nps_now)} over {answers:,} customers' latest answers: "
        f"{int(classes['promoter']):,} promoters, {int(classes['passive']):,} passives, "
        f"{int(classes['detractor']):,} detractors (% promoters - % detractors)."
    )
    if f.nps_monthly is not None and not f.nps_monthly.empty:
        monthly = f.nps_monthly
        figure = go.Figure()
        for column, color in (
            ("promoters", PALETTE[2]),
            ("passives", "#BBBBBB"),
            ("detractors", PALETTE[3]),
        ):
            figure.add_bar(
                x=list(monthly.index), y=monthly[column], name=column, marker_color=color
            )
        figure.add_scatter(
            x=list(monthly.index),
            y=monthly["nps"],
            name="NPS",
            yaxis="y2",
            mode="lines+markers",
            line={"color": "#222"},
        )
        figure.update_layout(
            barmode="stack",
            yaxis2={
                "title": "NPS",
                "overlaying": "y",
                "side": "right",
                "showgrid": False,
                "tickmode": "auto",
                "range": [-100, 100],
            },
        )
        _layout(
            figure,
            "NPS by month (each customer's latest answer in the month)",
            xaxis="month",
            yaxis="answers",
        )
        reading = f"NPS in {monthly.index[-1]}: {signed(monthly['nps'].iloc[-1])}. " + now
        charts.append(Chart("chart-nps", figure, reading))
        tables.append(("NPS by month", monthly.round(2)))
    else:
        figure = go.Figure(
            go.Bar(
                x=list(classes.index),
                y=classes.to_numpy(),
                marker_color=[PALETTE[2], "#BBBBBB", PALETTE[3]],
            )
        )
        _layout(figure, "Customers by their latest NPS answer", xaxis="class", yaxis="customers")
        charts.append(Chart("chart-nps", figure, now))
    complaints_now = (
        f"Open complaints now: {f.open_now:,}, of which {f.overdue_now:,} overdue "
        f"(SLA {sla_hours} h)."
    )
    if f.complaints_monthly is not None and not f.complaints_monthly.empty:
        monthly = f.complaints_monthly
        figure = go.Figure()
        figure.add_bar(x=list(monthly.index), y=monthly["opened"], name="opened")
        figure.add_bar(x=list(monthly.index), y=monthly["resolved"], name="resolved")
        figure.add_bar(x=list(monthly.index), y=monthly["overdue"], name="overdue (of opened)")
        figure.add_scatter(
            x=list(monthly.index),
            y=monthly["median_hours_to_resolve"],
            name="median hours to resolve",
            yaxis="y2",
            mode="lines+markers",
        )
        figure.update_layout(
            barmode="group",
            yaxis2={
                "title": "hours",
                "overlaying": "y",
                "side": "right",
                "showgrid": False,
                "tickmode": "auto",
            },
        )
        _layout(figure, "Complaints by month", xaxis="month", yaxis="complaints")
        median = f.median_hours_to_resolve
        reading = (
            f"{int(monthly['opened'].sum()):,} complaints opened, "
            f"{int(monthly['resolved'].sum()):,} resolved, {int(monthly['overdue'].sum()):,} "
            f"overdue; median time to resolve "
            f"{'n/a' if median is None else f'{median:.1f} h'}. " + complaints_now
        )
        charts.append(Chart("chart-complaints", figure, reading))
        tables.append(("complaints by month", monthly.round(2)))
    else:
        notes.append(complaints_now)
        notes.append(
            HISTORY_ONLY.replace("this chart needs", "NPS and complaints by month need")
            if figures.report.history is None
            else "No complaint was opened in this history."
        )
    return Section(
        "feedback",
        "NPS and complaints",
        "Is NPS rising? Are complaints answered fast?",
        charts,
        notes,
        tables,
    )


def churn_section(figures: Figures, money: Money) -> Section:
    c = figures.churn
    histogram = c.p_alive_histogram
    figure = go.Figure(
        go.Bar(
            x=(histogram["bin_start"] + histogram["bin_end"]) / 2,
            y=histogram["customers"],
            width=1 / len(histogram),
            marker_color=PALETTE[0],
            name="customers",
        )
    )
    _layout(
        figure,
        "P(alive): how likely each buyer is still a customer (BG/NBD)",
        xaxis="P(alive)",
        yaxis="customers",
    )
    buyers = int(histogram["customers"].sum())
    below = int(histogram.loc[histogram["bin_end"] <= 0.5, "customers"].sum())
    reading_hist = (
        f"{below:,} of {buyers:,} buyers ({percent(below / buyers if buyers else None)}) are "
        "more likely gone than not (P(alive) below 0.5)."
    )
    levels = c.by_level
    figure2 = go.Figure()
    figure2.add_bar(
        x=list(levels.index), y=levels["customers"], name="customers", marker_color=PALETTE[0]
    )
    figure2.add_bar(
        x=list(levels.index),
        y=levels["recent_spend_minor"].map(money.major),
        name=f"their net spend, last {c.window_days} days ({money.currency})",
        yaxis="y2",
        marker_color=PALETTE[1],
    )
    figure2.update_layout(
        barmode="group",
        yaxis2={
            "title": money.currency,
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            "tickmode": "auto",
        },
    )
    _layout(
        figure2,
        "Customers by churn-risk level, and what they spent",
        xaxis="churn level",
        yaxis="customers",
    )
    total = int(levels["customers"].sum())
    reading_levels = (
        f"{c.at_risk:,} customers ({percent(c.at_risk / total if total else None)}) are above "
        f"the lowest risk level; they spent {money(c.at_risk_spend_minor)} in the last "
        f"{c.window_days} days: that is what is at stake."
    )
    return Section(
        "churn",
        "Churn risk",
        "Who is slipping away, and what do they bring?",
        [
            Chart("chart-p-alive", figure, reading_hist),
            Chart("chart-churn-levels", figure2, reading_levels),
        ],
        tables=[("by churn level", levels)],
    )


def clv_section(figures: Figures, money: Money) -> Section:
    value = figures.lifetime_value
    if value is None:
        return Section(
            "clv",
            "Customer lifetime value",
            "What are our customers worth?",
            [],
            ["No buyer yet: no value to estimate."],
        )
    top = value.top
    figure = go.Figure(
        go.Bar(
            x=top["clv_minor"].map(money.major)[::-1],
            y=top["customer_id"][::-1],
            orientation="h",
            marker_color=PALETTE[2],
            customdata=top[["expected_purchases", "expected_spend_minor"]][::-1].to_numpy(),
            hovertemplate="%{y}: %{x:,.2f} (%{customdata[0]:.2f} purchases)<extra></extra>",
        )
    )
    _layout(
        figure,
        f"Top {len(top)} customers by expected value over the next 12 months",
        xaxis=f"expected value ({money.currency})",
        yaxis="customer",
    )
    figure.update_yaxes(type="category")
    total = value.total_clv_minor
    top_share = float(top["clv_minor"].sum()) / total if total > 0 else None
    bg = value.bg_nbd
    origin = "fitted to this data" if value.bg_nbd_fitted else "the rules file's (no fit)"
    gg = value.gamma_gamma
    gg_words = (
        "Gamma-Gamma not fitted (too few repeat buyers); own mean spend used"
        if gg is None
        else f"Gamma-Gamma p={gg.params.p:.3g}, q={gg.params.q:.3g}, v={gg.params.v:.4g}"
    )
    reading = (
        f"Expected value of the next 12 months: {money(total)} over "
        f"{len(value.per_customer):,} buyers; the top {len(top)} hold {percent(top_share)}. "
        f"BG/NBD r={bg.r:.3g}, alpha={bg.alpha:.3g}, a={bg.a:.3g}, b={bg.b:.3g} ({origin}); "
        f"{gg_words}; spend per visit from {value.monetary_basis}."
    )
    table = top.assign(
        expected_spend=top["expected_spend_minor"].map(money),
        expected_value=top["clv_minor"].map(money),
        expected_purchases=top["expected_purchases"].round(2),
        p_alive=top["p_alive"].round(3),
    )[
        [
            "customer_id",
            "tier",
            "visits",
            "p_alive",
            "expected_purchases",
            "expected_spend",
            "expected_value",
        ]
    ]
    return Section(
        "clv",
        "Customer lifetime value",
        "What are our customers worth?",
        [Chart("chart-clv", figure, reading)],
        tables=[("top customers", table)],
    )


def economics_section(figures: Figures) -> Section:
    e = figures.economics
    charts: list[Chart] = []
    notes: list[str] = [f"Points outstanding now (the liability): {e.liability_now:,} points."]
    tables: list[tuple[str, pd.DataFrame]] = []
    if e.monthly is not None and not e.monthly.empty:
        monthly = e.monthly
        figure = go.Figure()
        figure.add_bar(
            x=list(monthly.index),
            y=monthly["earned"],
            name="earned (net of returns)",
            marker_color=PALETTE[2],
        )
        figure.add_bar(
            x=list(monthly.index),
            y=-monthly["expired"],
            name="expired (breakage)",
            marker_color=PALETTE[3],
        )
        figure.add_scatter(
            x=list(monthly.index),
            y=monthly["liability"],
            yaxis="y2",
            name="points outstanding",
            mode="lines+markers",
            line={"color": "#222"},
        )
        figure.update_layout(
            barmode="relative",
            yaxis2={
                "title": "points outstanding",
                "overlaying": "y",
                "side": "right",
                "showgrid": False,
                "tickmode": "auto",
            },
        )
        _layout(figure, "Points liability and breakage by month", xaxis="month", yaxis="points")
        reading = (
            f"Points outstanding {int(monthly['liability'].iloc[-1]):,} at the end of "
            f"{monthly.index[-1]}; {int(monthly['expired'].sum()):,} of "
            f"{int(monthly['earned'].sum()):,} points earned have lapsed: breakage "
            f"{percent(e.breakage)}."
        )
        charts.append(Chart("chart-liability", figure, reading))
        tables.append(("points by month", monthly))
    if e.rewards_monthly is not None and not e.rewards_monthly.empty:
        rewards = e.rewards_monthly
        figure = go.Figure()
        for column in rewards.columns:
            figure.add_bar(
                x=list(rewards.index), y=rewards[column], name=str(column).lower().replace("_", " ")
            )
        figure.update_layout(barmode="stack")
        _layout(figure, "Rewards issued by month", xaxis="month", yaxis="rewards")
        kinds = ", ".join(
            f"{int(n):,} {str(kind).lower().replace('_', ' ')}" for kind, n in rewards.sum().items()
        )
        charts.append(
            Chart("chart-rewards", figure, f"{e.rewards_total:,} rewards issued: {kinds}.")
        )
    if e.monthly is None:
        notes.append(
            HISTORY_ONLY.replace(
                "this chart needs", "liability, breakage and rewards over time need"
            )
        )
    return Section(
        "economics",
        "Program economics",
        "What do the points we owe cost us?",
        charts,
        notes,
        tables,
    )


def sections(figures: Figures) -> list[Section]:
    program = figures.report.program
    money = Money(program.currency, program.currency_exponent)
    return [
        revenue_section(figures, money),
        cohort_section(figures),
        activity_section(figures, money),
        feedback_section(figures, program.complaint_sla_hours),
        churn_section(figures, money),
        clv_section(figures, money),
        economics_section(figures),
    ]
