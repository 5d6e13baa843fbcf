"""A small history whose report figures are known by hand (default rules: 1 point per 1.00 at
the tier the customer paid in, silver from 500.00, points lapse 365 days after the last
purchase, complaints overdue after 48 h). The report is made as of 2025-04-01.

customer  purchases (net)                         points  visits  first month
a         300.00 Jan 5, 100.00 Feb 10               400     2     2025-01
b         100.00 Jan 20, 50.00 Mar 3                150     2     2025-01
c         50.00 Feb 14                               50     1     2025-02
d         30.00 Feb 20, all returned Feb 25            0     1     2025-02
e         20.00 Mar 1                                20     1     2025-03
g         10.00 2024-01-10, lapsed 2025-01-09          0     1     2024-01
h         600.00 Mar 15 (up to silver at once)       600     1     2025-03
f         no purchase, an NPS answer (a prospect)      0     0

- Pareto: 7 buyers, net revenue 1,230.00; the top 20 % is ceil(1.4) = 2 customers (h, a):
  1,000.00 of 1,230.00 = 81.3 %.
- Cohort 2025-01 (a, b): a bought in February (month +1), b in March (month +2): 50 % each.
  Cohort 2025-02 (c, d): nobody in March: 0 %. Repeat rate: a and b of 7 buyers, 28.6 %.
- NPS, the customers' latest answers: a 3 (its January 10 is older), b 9, c 7, f 10: 2
  promoters, 1 passive, 1 detractor: NPS = 100 * (2 - 1) / 4 = +25.0. January: a's 10 alone,
  +100.0.
- Liability: 400 + 150 + 50 + 20 + 600 = 1,220 points; g's 10 points lapsed in January 2025:
  breakage 10 of 1,230 earned = 0.8 %. End of January 2025: a 300 + b 100 = 400.
- Complaints in March: 3 opened (b answered in 24 h; c in 96 h, overdue; e never, overdue by
  April 1), 2 resolved, 2 overdue, median time to resolve 60 h; now 1 open, 1 overdue.
- Tiers at the end of March: h silver, the 7 others member; 1 move up (h, March)."""

from __future__ import annotations

from pathlib import Path

AS_OF = "2025-04-01"

CSV = """type,event_id,customer_id,occurred_at,total,purchase_event_id,score,complaint_id
purchase,g1,g,2024-01-10T12:00:00Z,10.00,,,
purchase,a1,a,2025-01-05T10:00:00Z,300.00,,,
nps,an1,a,2025-01-06T10:00:00Z,,,10,
purchase,b1,b,2025-01-20T10:00:00Z,100.00,,,
purchase,a2,a,2025-02-10T10:00:00Z,100.00,,,
purchase,c1,c,2025-02-14T10:00:00Z,50.00,,,
purchase,d1,d,2025-02-20T10:00:00Z,30.00,,,
return,dr1,d,2025-02-25T10:00:00Z,,d1,,
purchase,e1,e,2025-03-01T10:00:00Z,20.00,,,
purchase,b2,b,2025-03-03T10:00:00Z,50.00,,,
complaint_opened,bk1,b,2025-03-04T10:00:00Z,,,,K1
complaint_resolved,bk2,b,2025-03-05T10:00:00Z,,,,K1
nps,an2,a,2025-03-06T10:00:00Z,,,3,
nps,bn1,b,2025-03-06T11:00:00Z,,,9,
nps,cn1,c,2025-03-06T12:00:00Z,,,7,
nps,fn1,f,2025-03-06T13:00:00Z,,,10,
complaint_opened,ck1,c,2025-03-10T00:00:00Z,,,,K2
complaint_resolved,ck2,c,2025-03-14T00:00:00Z,,,,K2
purchase,h1,h,2025-03-15T10:00:00Z,600.00,,,
complaint_opened,ek1,e,2025-03-20T00:00:00Z,,,,K3
"""


def write(directory: Path) -> Path:
    path = directory / "handmade.csv"
    path.write_text(CSV)
    return path
