"""Synthetic shoppers: e-commerce sessions whose true purchase probability is known.

Each row is one shop session: what a shop's analytics logs about it (pages viewed per page type and the
time spent on them, bounce and exit rates, page value, the price and discount seen, basket value, how long
since the last visit, past orders, ...), a few categorical facts (product category, device, traffic
source, region, visitor type, month) and the ordered sequence of the last ``sequence_length`` item ids
the shopper viewed, with the category of each.

How a row is made
-----------------
A hidden *intent* per session drives the logged features (keen shoppers view more pages, stay longer,
exit less, reach pages with value, fill a basket), so the features are correlated the way real ones are.
The purchase logit ``f(x)`` is then a fixed function of the **observed** columns and sequence only, never
of the hidden intent, so ``sigmoid((f(x) - c) / noise)`` is exactly the probability of a purchase given
everything a model sees, and ranking by it gives the best AUC any model can reach (the Bayes-optimal
AUC). ``f`` is built so that a linear model is clearly worse than a good nonlinear one, while a model of
moderate size can learn all of it (bigger models help up to a point, not forever):

- thresholds and hinges: reaching a page with value at all, a basket over the free-shipping line, exit
  rates above 6 %;
- shapes no straight line fits: a price sweet spot, an evening peak in the hour of day, too many product
  pages (comparison shopping), saturating time on product pages and page value;
- interactions: discount x price, mobile x few pages, returning visitor x recency, special day x month,
  and a rank-2 product-category x traffic-source effect (for embeddings and cross layers);
- the sequence: repeated views of one category, going back to an item already seen, and whether the
  last item viewed is one of the shop's "hot" items (learnable only through item embeddings). Part of
  this follows from the tabular columns; a hidden per-session trait makes the rest visible only in the
  sequence, so sequence models have a small edge (about 0.005 AUC on the default config).

The label is ``f(x) + noise * e > c`` with ``e`` standard logistic noise: ``noise`` is the scale of what
the features do not explain (0 makes the label a deterministic function of the features). The cut ``c``
is placed between two generated scores so that exactly ``round(positive_rate * rows)`` rows are positive;
``true_prob = sigmoid((f(x) - c) / noise)``.

Sequences are int64 ``[rows, sequence_length]`` with 0 as padding. Sessions with fewer product views than
``sequence_length`` are **padded on the left**, so the last column is always the most recent view.
Item ids run 1..n_items and sequence category ids 1..n_categories (0 is padding in both).

Everything comes from ``numpy.random.Generator`` streams spawned from ``seed``: the same seed gives the
same data on any machine. 1,000,000 rows take a few seconds (see benchmarks/data_generation.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from costbench.data.fingerprint import GENERATOR_VERSION  # bump it there when the output changes
from costbench.errors import UserError

DEVICES = ["desktop", "mobile", "tablet"]
SOURCES = ["direct", "organic_search", "paid_search", "social", "email", "referral", "affiliate", "display"]
REGIONS = [f"region_{i}" for i in range(1, 10)]
VISITORS = ["new", "returning", "other"]
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

NUMERIC = [
    "admin_pages", "admin_duration", "info_pages", "info_duration", "product_pages", "product_duration",
    "bounce_rate", "exit_rate", "page_value", "price", "discount_pct", "basket_value",
    "days_since_last_visit", "past_orders", "hour", "special_day",
]
BOOLEAN = ["weekend"]
CATEGORICAL = ["product_category", "device", "traffic_source", "region", "visitor_type", "month"]
# skewed counts, durations and amounts: prepared as log1p before standardising
LOG1P = [
    "admin_pages", "admin_duration", "info_pages", "info_duration", "product_pages", "product_duration",
    "page_value", "price", "basket_value", "days_since_last_visit", "past_orders",
]
FREE_SHIPPING = 50.0  # basket value over which buying gets more likely (a threshold)
HOT_SHARE = 0.06  # share of items that sell unusually well
TABLE_SIZE = 1 << 20  # resolution of the category sampling table


@dataclass(frozen=True)
class World:
    """The shop: its categories, items and the fixed effects of the true model."""

    category_popularity: np.ndarray  # [C], sums to 1
    category_log_price: np.ndarray  # [C]
    category_effect: np.ndarray  # [C]
    category_taste: np.ndarray  # [C, 2] category x traffic source interaction, rank 2
    source_taste: np.ndarray  # [len(SOURCES), 2]
    category_item_start: np.ndarray  # [C] first item id of each category
    category_item_count: np.ndarray  # [C]
    item_category: np.ndarray  # [n_items + 1], 1-based category id per item id, 0 for padding
    hot: np.ndarray  # [n_items + 1] bool


@dataclass(frozen=True)
class SyntheticData:
    """Generated sessions. ``columns`` holds raw values: numeric as float64 (NaN = missing),
    booleans as bool, categoricals as int codes into ``categories[name]``."""

    columns: dict[str, np.ndarray]
    categories: dict[str, list[str]]
    items: np.ndarray  # int64 [n, L], 0 = padding, padded on the left
    item_categories: np.ndarray  # int64 [n, L], 0 = padding
    true_prob: np.ndarray  # float64 [n]
    label: np.ndarray  # bool [n]
    sequence_logit: np.ndarray  # float64 [n], the part of f(x) that only the sequence reveals

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def frame(self) -> pd.DataFrame:
        """The tabular columns as a DataFrame, categoricals as pandas Categorical of their names."""
        return pd.DataFrame({
            name: pd.Categorical.from_codes(values, categories=self.categories[name])
            if name in self.categories else values
            for name, values in self.columns.items()
        })


def check_config(n_items: int, n_categories: int) -> None:
    if n_items < n_categories:
        raise UserError(f"data.n_items ({n_items}) must be at least data.n_categories ({n_categories}): "
                        "every category needs an item; raise n_items or lower n_categories")


def generate(rows: int, *, positive_rate: float = 0.08, noise: float = 1.0, sequence_length: int = 20,
             n_items: int = 5000, n_categories: int = 40, seed: int = 7, stream: int = 0) -> SyntheticData:
    """Generate ``rows`` sessions; see the module docstring for how. ``stream`` k > 0 draws other sessions
    of the same shop (the world comes from ``seed`` alone): more rows of the same distribution, none of
    them a row of stream 0 (the unlabelled rows distillation's teacher labels)."""
    check_config(n_items, n_categories)
    world_rng, session_rng, sequence_rng, label_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([GENERATOR_VERSION, seed]).spawn(4)
    )
    if stream:
        session_rng, sequence_rng, label_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence([GENERATOR_VERSION, seed, stream]).spawn(3))
    world = make_world(n_items, n_categories, world_rng)
    columns = draw_sessions(rows, world, session_rng)
    items, item_categories = draw_sequences(columns, world, sequence_length, sequence_rng)
    tab = tabular_logit(columns, world)
    seq = sequence_logit(items, item_categories, world)
    label, true_prob = draw_labels(tab + seq, positive_rate, noise, label_rng)
    categories = {
        "product_category": [f"cat_{i:02d}" for i in range(1, n_categories + 1)],
        "device": DEVICES, "traffic_source": SOURCES, "region": REGIONS, "visitor_type": VISITORS,
        "month": MONTHS,
    }
    return SyntheticData(columns=columns, categories=categories, items=items.astype(np.int64),
                         item_categories=item_categories.astype(np.int64), true_prob=true_prob, label=label,
                         sequence_logit=seq)


def make_world(n_items: int, n_categories: int, rng: np.random.Generator) -> World:
    c = n_categories
    popularity = 1.0 / np.arange(1, c + 1) ** 0.9
    popularity = rng.permutation(popularity / popularity.sum())
    # every category gets at least one item; the rest in proportion to sqrt(popularity)
    share = np.sqrt(popularity) / np.sqrt(popularity).sum()
    counts = 1 + rng.multinomial(n_items - c, share)
    starts = 1 + np.concatenate([[0], np.cumsum(counts)[:-1]])
    item_category = np.concatenate([[0], np.repeat(np.arange(1, c + 1), counts)])
    hot = rng.random(n_items + 1) < HOT_SHARE
    hot[0] = False
    return World(
        category_popularity=popularity,
        category_log_price=rng.normal(3.6, 0.7, c),
        category_effect=rng.normal(0.0, 0.35, c),
        category_taste=rng.normal(0.0, 0.3, (c, 2)),
        source_taste=rng.normal(0.0, 0.3, (len(SOURCES), 2)),
        category_item_start=starts.astype(np.int32),
        category_item_count=counts.astype(np.int32),
        item_category=item_category.astype(np.int32),
        hot=hot,
    )


def _choice(rng: np.random.Generator, p: list[float] | np.ndarray, n: int) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return np.searchsorted(np.cumsum(p / p.sum())[:-1], rng.random(n), side="right").astype(np.int64)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free


def draw_sessions(n: int, world: World, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The logged columns of ``n`` sessions, driven by a hidden intent that is then thrown away."""
    visitor = _choice(rng, [0.22, 0.74, 0.04], n)
    device = _choice(rng, [0.44, 0.46, 0.10], n)
    source = _choice(rng, [0.22, 0.30, 0.14, 0.10, 0.08, 0.07, 0.05, 0.04], n)
    region = _choice(rng, [0.38, 0.09, 0.19, 0.09, 0.03, 0.06, 0.06, 0.04, 0.04], n)
    month = _choice(rng, [0.02, 0.02, 0.15, 0.04, 0.27, 0.02, 0.04, 0.04, 0.04, 0.05, 0.24, 0.14], n)
    category = _choice(rng, world.category_popularity, n)
    hour = _choice(rng, [1, .6, .4, .3, .3, .4, .8, 1.5, 2.5, 3, 3.2, 3.3, 3.5, 3.3, 3.1, 3, 3.1, 3.4,
                         3.8, 4.3, 4.6, 4.2, 3.2, 2], n)
    weekend = rng.random(n) < 2 / 7

    mobile = device == 1
    returning = visitor != 0
    intent = (rng.standard_normal(n) + 0.25 * (visitor == 1) + 0.2 * np.isin(source, [2, 4])
              - 0.15 * (source == 3))

    product_pages = rng.poisson(np.exp(1.7 + 0.45 * intent + 0.15 * (device == 0)))
    admin_pages = rng.poisson(np.exp(0.2 + 0.3 * intent))
    info_pages = rng.poisson(np.exp(-0.8 + 0.3 * intent))
    product_duration = product_pages * np.exp(rng.normal(3.5 + 0.2 * intent - 0.25 * mobile, 0.5))
    admin_duration = admin_pages * np.exp(rng.normal(3.3, 0.7, n))
    info_duration = info_pages * np.exp(rng.normal(3.8, 0.8, n))
    exit_rate = _sigmoid(rng.normal(-2.9 - 0.4 * intent, 0.45))
    bounce_rate = exit_rate * rng.uniform(0.1, 0.9, n)
    page_value = (rng.random(n) < _sigmoid(-1.7 + 1.1 * intent)) * np.exp(rng.normal(2.8 + 0.3 * intent, 0.9))
    price = np.exp(world.category_log_price[category] + rng.normal(0.0, 0.5, n))
    discount = np.where(rng.random(n) < 0.35, 5.0 * rng.integers(1, 11, n), 0.0)
    in_basket = rng.random(n) < _sigmoid(-1.2 + 0.9 * intent)
    basket_value = in_basket * price * (1 + rng.poisson(0.6, n)) * rng.uniform(0.8, 1.2, n)
    days = np.where(returning, rng.exponential(1.0, n) * np.exp(3.0 - 0.3 * intent), np.nan)
    past_orders = np.where(returning, rng.poisson(np.exp(0.2 + 0.35 * intent)), 0)
    special_month = np.isin(month, [1, 4, 10, 11])  # feb, may, nov, dec
    special_day = np.where(special_month & (rng.random(n) < 0.35), 0.2 * rng.integers(1, 6, n), 0.0)

    f64 = np.float64
    return {
        "admin_pages": admin_pages.astype(f64), "admin_duration": admin_duration,
        "info_pages": info_pages.astype(f64), "info_duration": info_duration,
        "product_pages": product_pages.astype(f64), "product_duration": product_duration,
        "bounce_rate": bounce_rate, "exit_rate": exit_rate, "page_value": page_value, "price": price,
        "discount_pct": discount, "basket_value": basket_value, "days_since_last_visit": days,
        "past_orders": past_orders.astype(f64), "hour": hour.astype(f64), "special_day": special_day,
        "weekend": weekend,
        "product_category": category, "device": device, "traffic_source": source, "region": region,
        "visitor_type": visitor, "month": month,
    }


def tabular_logit(cols: dict[str, np.ndarray], world: World) -> np.ndarray:
    """The part of the true logit that the tabular columns carry (observed columns only)."""
    return sum(tabular_terms(cols, world).values()) - 4.0


def tabular_terms(cols: dict[str, np.ndarray], world: World) -> dict[str, np.ndarray]:
    """The named terms of the tabular logit, for reading and for measuring what each one is worth."""
    category, source = cols["product_category"], cols["traffic_source"]
    mobile = cols["device"] == 1
    pv, price, basket = cols["page_value"], cols["price"], cols["basket_value"]
    hour, special = cols["hour"], cols["special_day"]
    returning = cols["visitor_type"] != 0
    days = np.nan_to_num(cols["days_since_last_visit"], nan=1e6)
    holiday = np.isin(cols["month"], [10, 11])  # nov, dec
    pages = cols["product_pages"]
    log_price = np.log(price)
    return {
        "category": world.category_effect[category],
        "category_x_source": (world.category_taste[category] * world.source_taste[source]).sum(axis=1),
        "page_value": 1.2 * (pv > 0) + 0.4 * np.tanh(np.log1p(pv) - 3.0),
        "exit_rate": -40.0 * np.maximum(cols["exit_rate"] - 0.06, 0.0),
        "product_pages": 1.2 * np.tanh(pages / 4.0) - 0.08 * np.maximum(pages - 12.0, 0.0),
        "mobile_x_few_pages": -1.2 * mobile * np.exp(-pages / 3.0),
        "price": -0.9 * ((log_price - 3.7) / 0.9) ** 2,
        "discount_x_price": 2.0 * cols["discount_pct"] / 50.0 * _sigmoid(3.0 * (log_price - 4.0)),
        "returning_x_recency": returning * 1.5 * np.exp(-days / 4.0) + 0.3 * np.log1p(cols["past_orders"]),
        "basket": 1.0 * (basket >= FREE_SHIPPING) + 0.2 * (basket > 0),
        "hour": 1.0 * np.cos(2 * np.pi * (hour - 20.0) / 24.0),
        "special_day_x_month": np.where(holiday, 1.2, -0.5) * special,
    }


def draw_sequences(cols: dict[str, np.ndarray], world: World, length: int, rng: np.random.Generator,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The last ``length`` product views of each session (int32 item ids and their category ids),
    padded on the left with 0.

    How focused a session is (the share of views in its own product category) and how often the shopper
    goes back to an item depend on the observed columns and on a hidden per-session trait that only
    the sequence reveals.
    """
    n = len(cols["product_pages"])
    if length == 0:
        empty = np.zeros((n, 0), dtype=np.int32)
        return empty, empty.copy()
    pv_seen = cols["page_value"] > 0
    per_page = np.log1p(cols["product_duration"] / np.maximum(cols["product_pages"], 1.0))
    focus = _sigmoid(-0.6 + 0.8 * pv_seen + 0.3 * (per_page - 3.5) + 0.5 * rng.standard_normal(n))
    revisit = _sigmoid(-2.2 + 0.6 * pv_seen + 0.5 * rng.standard_normal(n))

    own = cols["product_category"].astype(np.int32)[:, None]  # 0-based
    other = _sampling_table(world.category_popularity)[rng.integers(0, TABLE_SIZE, (n, length), dtype=np.uint32)]
    category = np.where(rng.random((n, length), dtype=np.float32) < focus[:, None], own, other)
    u = rng.random((n, length), dtype=np.float32)
    count = world.category_item_count[category]
    offset = np.minimum((count.astype(np.float32) * (u * u)).astype(np.int32), count - 1)  # popular first
    items = world.category_item_start[category] + offset
    back = rng.random((n, length), dtype=np.float32) < revisit[:, None]
    for j in range(2, length):  # going back to the item viewed two steps earlier
        np.copyto(items[:, j], items[:, j - 2], where=back[:, j])
    views = np.minimum(cols["product_pages"], length).astype(np.int32)
    items[np.arange(length, dtype=np.int32)[None, :] < (length - views)[:, None]] = 0
    return items, world.item_category[items]


def _sampling_table(p: np.ndarray) -> np.ndarray:
    """Category per slot of a table where each category fills its share: one uniform integer draws one."""
    cdf = np.cumsum(p / p.sum())
    return np.minimum(np.searchsorted(cdf, (np.arange(TABLE_SIZE) + 0.5) / TABLE_SIZE), len(p) - 1).astype(np.int32)


def _max_run(sorted_ids: np.ndarray) -> np.ndarray:
    """Longest run of one non-zero id in each row of a row-sorted id matrix."""
    position = np.arange(sorted_ids.shape[1], dtype=np.int32)
    start = np.zeros(sorted_ids.shape, dtype=np.int32)
    new_run = sorted_ids[:, 1:] != sorted_ids[:, :-1]
    start[:, 1:] = np.where(new_run, position[1:], 0)
    np.maximum.accumulate(start, axis=1, out=start)
    run = position - start + 1
    run[sorted_ids == 0] = 0
    return run.max(axis=1)


def sequence_logit(items: np.ndarray, item_categories: np.ndarray, world: World) -> np.ndarray:
    """The part of the true logit that only the sequence carries."""
    n, length = items.shape
    if length == 0:
        return np.zeros(n)
    repeats = _max_run(np.sort(item_categories, axis=1))
    went_back = _max_run(np.sort(items, axis=1)) >= 2
    hot_last = world.hot[items[:, -1]]
    return 1.0 * np.tanh(np.maximum(repeats - 2, 0) / 3.0) + 0.5 * went_back + 0.5 * hot_last - 0.6


def draw_labels(logit: np.ndarray, positive_rate: float, noise: float, rng: np.random.Generator,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``logit + noise * e > c`` with exactly round(positive_rate * n) positives, and their
    true probability ``sigmoid((logit - c) / noise)``."""
    n = len(logit)
    k = min(max(round(positive_rate * n), 1), n - 1)
    u = rng.random(n)
    score = logit + noise * (np.log(u) - np.log1p(-u)) if noise > 0 else logit + 1e-9 * u  # break ties
    order = np.argpartition(-score, [k - 1, k])
    label = np.zeros(n, dtype=bool)
    label[order[:k]] = True
    cut = 0.5 * (score[order[k - 1]] + score[order[k]])
    true_prob = _sigmoid((logit - cut) / noise) if noise > 0 else label.astype(np.float64)
    return label, true_prob
