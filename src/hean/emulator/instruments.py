"""Instrument data (price grid, lot size, start price) and exact decimal formatting.

Inside the emulator every price is an integer number of **ticks** and every quantity an integer
number of **lots**; :class:`InstrumentSpec` converts them to Bybit's decimal strings and back.
Values follow Bybit's listings for the default symbols (e.g. linear BTCUSDT: tick 0.10, qty step
0.001; inverse BTCUSD: tick 0.50, qty step 1 USD) and are derived from the price magnitude for
any other symbol.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "POW10",
    "InstrumentSpec",
    "fmt_strip",
    "fmt_units",
    "future_delivery_ms",
    "instrument_spec",
    "is_future_symbol",
    "is_option_symbol",
    "parse_option_symbol",
]

POW10: tuple[int, ...] = tuple(int(10**i) for i in range(40))

# Start prices of well-known base coins (roughly realistic).
_BASE_PRICES: dict[str, float] = {
    "BTC": 60000.0, "ETH": 3000.0, "SOL": 150.0, "XRP": 0.6, "DOGE": 0.15, "BNB": 600.0,
    "ADA": 0.45, "AVAX": 30.0, "LINK": 15.0, "LTC": 80.0, "DOT": 6.0, "TRX": 0.12, "TON": 5.5,
    "SUI": 1.8, "NEAR": 5.0, "APT": 8.0, "ARB": 0.8, "OP": 1.7, "ATOM": 7.0, "BCH": 400.0,
}  # fmt: skip
_QUOTES: tuple[str, ...] = ("USDT", "USDC", "USDE", "USD", "EUR", "BTC", "ETH")

# (category, symbol) -> (price decimals, tick in price units, qty decimals, lot in qty units)
_KNOWN: dict[tuple[str, str], tuple[int, int, int, int]] = {
    ("linear", "BTCUSDT"): (2, 10, 3, 1),
    ("linear", "ETHUSDT"): (2, 1, 2, 1),
    ("linear", "SOLUSDT"): (3, 10, 1, 1),
    ("linear", "XRPUSDT"): (4, 1, 0, 1),
    ("linear", "DOGEUSDT"): (5, 1, 0, 1),
    ("inverse", "BTCUSD"): (2, 50, 0, 1),
    ("inverse", "ETHUSD"): (2, 5, 0, 1),
    ("spot", "BTCUSDT"): (2, 1, 6, 1),
    ("spot", "ETHUSDT"): (2, 1, 5, 1),
    ("spot", "SOLUSDT"): (2, 1, 3, 1),
    ("spot", "XRPUSDT"): (4, 1, 2, 1),
    ("spot", "DOGEUSDT"): (5, 1, 1, 1),
}

_OPTION_RE = re.compile(
    r"^(?P<base>[A-Z0-9]{2,10})-(?P<day>\d{1,2})(?P<mon>[A-Z]{3})(?P<year>\d{2})"
    r"-(?P<strike>\d{1,9}(?:\.\d{1,4})?)-(?P<kind>[CP])(?:-(?P<settle>USDT|USDC))?$"
)
#: Dated (delivery) futures on linear/inverse: ``BTCUSDT-26JUN26`` (USDT) or ``BTC-26DEC25`` (USDC).
_FUTURE_RE = re.compile(
    r"^(?P<root>[A-Z0-9]{2,20})-(?P<day>\d{2})(?P<mon>[A-Z]{3})(?P<year>\d{2})$"
)
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def fmt_units(value: int, dp: int) -> str:
    """Format an integer number of ``10**-dp`` units as a fixed-point decimal string."""
    if dp == 0:
        return str(value)
    if value < 0:
        return "-" + fmt_units(-value, dp)
    s = str(value)
    if len(s) <= dp:
        s = "0" * (dp + 1 - len(s)) + s
    return f"{s[:-dp]}.{s[-dp:]}"


def fmt_strip(value: int, dp: int) -> str:
    """Like :func:`fmt_units` but without trailing zeros (``"0.005"``, ``"20575"``)."""
    s = fmt_units(value, dp)
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("", "-0") else s


def _units(text: str, dp: int) -> int:
    """Parse a plain decimal string into ``10**-dp`` units; ValueError if it has more decimals."""
    if not isinstance(text, str) or not re.fullmatch(r"-?\d{1,30}(\.\d{1,30})?", text):
        raise ValueError(f"not a decimal number: {text!r}")
    neg = text.startswith("-")
    whole, _, frac = text.lstrip("-").partition(".")
    frac = frac.rstrip("0")
    if len(frac) > dp:
        raise ValueError(f"{text!r} has more than {dp} decimals")
    value = int(whole) * POW10[dp] + (int(frac) * POW10[dp - len(frac)] if frac else 0)
    return -value if neg else value


def is_option_symbol(symbol: str) -> bool:
    return _OPTION_RE.match(symbol) is not None


def is_future_symbol(symbol: str) -> bool:
    """A dated future's name (``BTCUSDT-26JUN26``, ``BTC-26DEC25``) with a valid date."""
    return future_delivery_ms(symbol) is not None


def future_delivery_ms(symbol: str) -> int | None:
    """Delivery time of a dated future (08:00 UTC of the date in its name), or None."""
    m = _FUTURE_RE.match(symbol)
    if m is None or m["mon"] not in _MONTHS:
        return None
    try:
        when = datetime(
            2000 + int(m["year"]), _MONTHS.index(m["mon"]) + 1, int(m["day"]), 8, tzinfo=UTC
        )
    except ValueError:
        return None
    return int(when.timestamp()) * 1000


def parse_option_symbol(symbol: str) -> tuple[str, int, int, float, bool] | None:
    """``(base, expiry_month_index, expiry_year, strike, is_call)`` or None. Day is ignored."""
    m = _OPTION_RE.match(symbol)
    if m is None or m["mon"] not in _MONTHS:
        return None
    return (
        m["base"],
        _MONTHS.index(m["mon"]) + 1,
        2000 + int(m["year"]),
        float(m["strike"]),
        m["kind"] == "C",
    )


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """Static instrument data; ``tick`` in ``10**-price_dp`` units, ``lot`` in ``10**-qty_dp``."""

    category: str
    symbol: str
    base: str
    price_dp: int
    tick: int
    qty_dp: int
    start_price: float
    lot: int = 1

    # -- ticks and lots <-> strings -------------------------------------------------------------

    def price_str(self, ticks: int) -> str:
        return fmt_units(ticks * self.tick, self.price_dp)

    def qty_str(self, lots: int) -> str:
        return fmt_units(lots * self.lot, self.qty_dp)

    def parse_price(self, text: str) -> int:
        """Ticks for a price string; ValueError if it is not on the tick grid."""
        units = _units(text, self.price_dp)
        if units <= 0 or units % self.tick:
            raise ValueError(f"price {text!r} is not a positive multiple of the tick")
        return units // self.tick

    def parse_qty(self, text: str) -> int:
        """Lots for a quantity string; ValueError if it is not a multiple of the lot."""
        units = _units(text, self.qty_dp)
        if units <= 0 or units % self.lot:
            raise ValueError(f"qty {text!r} is not a positive multiple of the lot")
        return units // self.lot

    # -- value ----------------------------------------------------------------------------------

    @property
    def notional_dp(self) -> int:
        """Decimals of :meth:`notional` values (exact for linear/spot/option)."""
        return 8 if self.category == "inverse" else self.price_dp + self.qty_dp

    def notional(self, ticks: int, lots: int) -> int:
        """Trade value in ``10**-notional_dp`` units of the quote coin (inverse: of the base
        coin, whose quantities are USD contracts)."""
        price = ticks * self.tick
        qty = lots * self.lot
        if self.category == "inverse":
            return qty * POW10[8 + self.price_dp] // (price * POW10[self.qty_dp])
        return price * qty

    def ticks_of(self, price: float) -> int:
        """The nearest tick to a float price (at least 1)."""
        return max(1, round(price * POW10[self.price_dp] / self.tick))

    def price_of(self, ticks: float) -> float:
        return ticks * self.tick / POW10[self.price_dp]


def _base_of(symbol: str) -> str:
    if _FUTURE_RE.match(symbol):
        symbol = symbol.partition("-")[0]
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)]
    return symbol


def instrument_spec(category: str, symbol: str, rng: random.Random) -> InstrumentSpec:
    """Price grid and start price for a symbol (known table first, then by magnitude)."""
    if category == "option":
        parsed = parse_option_symbol(symbol)
        base = parsed[0] if parsed else symbol.split("-", 1)[0]
        under = _BASE_PRICES.get(base, 100.0)
        # BTC/ETH options: tick 5 / 0.1 USDT, qty step 0.01 / 0.1
        if under >= 10000:
            return InstrumentSpec(category, symbol, base, 0, 5, 2, under)
        if under >= 1000:
            return InstrumentSpec(category, symbol, base, 1, 1, 1, under)
        return InstrumentSpec(category, symbol, base, 3, 5, 0, under)
    base = _base_of(symbol)
    price = _BASE_PRICES.get(base)
    if price is None:
        price = round(10 ** rng.uniform(-1.0, 2.5), 4)
    known = _KNOWN.get((category, symbol))
    if known is not None:
        dp, tick, qty_dp, lot = known
        return InstrumentSpec(category, symbol, base, dp, tick, qty_dp, price, lot)
    if price >= 1000:
        dp, qty_dp = 2, 3
    elif price >= 10:
        dp, qty_dp = 3, 1
    elif price >= 1:
        dp, qty_dp = 4, 0
    else:
        dp, qty_dp = 5, 0
    if category == "spot":
        qty_dp += 2
    elif category == "inverse":
        qty_dp = 0
    return InstrumentSpec(category, symbol, base, dp, 1, qty_dp, price)
