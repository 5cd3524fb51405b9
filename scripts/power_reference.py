#!/usr/bin/env python3
"""Reference values for tests/reports_judgments.cpp: the minimal detectable difference (reports/judgments.cpp),
by numerical integration with the standard library only (no SciPy, no Boost; about a minute): the two-sided power of the pooled two-sample t-test is
P(|T| > t_c) for T = (Z + d) / sqrt(V / df), Z ~ N(0, 1), V ~ chi2(df), integrated over V with Simpson's rule;
t_c and d are found by bisection. Prints the noncentrality d and the MDD = d * sd * sqrt(1/na + 1/nb)."""
import math

def chi2_pdf(v, df):
    if v <= 0:
        return 0.0
    return math.exp((df / 2 - 1) * math.log(v) - v / 2 - (df / 2) * math.log(2) - math.lgamma(df / 2))

def norm_sf(x):
    return 0.5 * math.erfc(x / math.sqrt(2))

def power(c, d, df, upper=None, steps=20000):
    # P(T > c) + P(T < -c), T noncentral t(df, d)
    upper = upper or (df + 60 * math.sqrt(2 * df) + 60)
    h = upper / steps
    total = 0.0
    for i in range(steps + 1):
        v = i * h
        s = math.sqrt(v / df)
        f = chi2_pdf(v, df) * (norm_sf(c * s - d) + (1 - norm_sf(-c * s - d)))
        w = 1 if i in (0, steps) else (4 if i % 2 else 2)
        total += w * f
    return total * h / 3

def bisect(f, lo, hi, target, increasing):
    for _ in range(60):
        mid = (lo + hi) / 2
        if (f(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2

def mdd(sd, na, nb, alpha=0.05, beta_power=0.8):
    df = na + nb - 2
    c = bisect(lambda t: power(t, 0.0, df), 0.0, 50.0, alpha, increasing=False)
    d = bisect(lambda x: power(c, x, df), 0.0, 50.0, beta_power, increasing=True)
    return c, d, d * sd * math.sqrt(1 / na + 1 / nb)

for sd, na, nb in [(1.0, 3, 3), (0.047, 3, 3), (2.5, 5, 4), (1.0, 9, 9), (1.0, 10, 10)]:
    c, d, m = mdd(sd, na, nb)
    print(f"sd={sd} na={na} nb={nb}: t_c={c:.6f} noncentrality={d:.6f} mdd={m:.6f}")
