"""The program insight report (`loyalty report`): is the loyalty program paying off?

- `history`: an event file folded through the core (replay's fold), recording history;
- `live`: the same customer lines read from the running workers' API;
- `figures`: pure functions from those frames to the report's numbers (no I/O);
- `clv`: the customer-lifetime-value models (BG/NBD expectation, Gamma-Gamma fit);
- `charts`: figures to plotly charts, each with a one-line reading in words;
- `page`: one self-contained HTML file (plotly.js inlined, opens offline, prints)."""
