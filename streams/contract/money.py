"""Money at the edges: decimal amounts in files become exact integer minor units inside.

Inside the program money is always an `int` of minor units plus an ISO 4217 currency code;
decimals appear only where people type or read amounts (CSV, JSON, display)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation, localcontext

from streams.core.limits import AVRO_LONG_MAX

# ISO 4217 currencies whose minor unit is not 1/100 (the table's "E" column); all others have 2.
_MINOR_UNIT_EXPONENTS: dict[str, int] = {
    "BHD": 3, "BIF": 0, "CLF": 4, "CLP": 0, "DJF": 0, "GNF": 0, "IQD": 3, "ISK": 0,
    "JOD": 3, "JPY": 0, "KMF": 0, "KRW": 0, "KWD": 3, "LYD": 3, "OMR": 3, "PYG": 0,
    "RWF": 0, "TND": 3, "UGX": 0, "UYI": 0, "UYW": 4, "VND": 0, "VUV": 0, "XAF": 0,
    "XOF": 0, "XPF": 0,
}  # fmt: skip

_CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")

# An amount as typed: 19 digits of minor units, decimals, a sign and an exponent fit with room.
MAX_AMOUNT_CHARS = 64


class MoneyError(ValueError):
    """An amount or currency that cannot be represented exactly."""


def minor_unit_exponent(currency: str) -> int:
    """Decimal places of the currency's minor unit (EUR 2, JPY 0, KWD 3)."""
    if not _CURRENCY_CODE.match(currency):
        raise MoneyError(f"currency {currency!r} is not a three-letter ISO 4217 code such as EUR")
    return _MINOR_UNIT_EXPONENTS.get(currency, 2)


def to_minor_units(amount: str | int | float | Decimal, currency: str) -> int:
    """'11.77' EUR -> 1177, '5' JPY -> 5. Exact: an amount with more decimals than the
    currency has (11.775 EUR) is an error, never rounded. Floats (from JSON) go through
    their shortest repr, so 11.77 stays 11.77 and not 11.769999..."""
    exponent = minor_unit_exponent(currency)
    if isinstance(amount, bool):
        raise MoneyError(f"amount {amount!r} is not a number")
    text = repr(amount) if isinstance(amount, float) else str(amount).strip()
    if len(text) > MAX_AMOUNT_CHARS:
        raise MoneyError(
            f"amount {text[:20]!r}... is {len(text)} characters long, more than an amount "
            f"needs ({MAX_AMOUNT_CHARS})"
        )
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise MoneyError(f"amount {text!r} is not a decimal number such as 11.77") from None
    if not value.is_finite():
        raise MoneyError(f"amount {text!r} is not a finite number")
    # Minor units travel in an Avro long. Looked at before scaling, so that '1e999999999'
    # never becomes a number, and '1e-999999999' is not rounded to 0 by the scaling.
    magnitude = value.adjusted() + exponent  # the power of ten of the leading minor unit digit
    if value and magnitude >= _LONG_DIGITS:
        raise MoneyError(_too_large(text, currency, exponent))
    if value and magnitude < 0:
        raise MoneyError(f"amount {text!r} has more decimals than {currency} allows ({exponent})")
    with localcontext() as exact:
        # the default 28 digits rounded 1.0000000000000000000000000001 EUR to 100 cents
        exact.prec = 2 * MAX_AMOUNT_CHARS
        scaled = value.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"amount {text!r} has more decimals than {currency} allows ({exponent})")
    minor = int(scaled)
    if abs(minor) > AVRO_LONG_MAX:
        raise MoneyError(_too_large(text, currency, exponent))
    return minor


_LONG_DIGITS = len(str(AVRO_LONG_MAX))


def _too_large(text: str, currency: str, exponent: int) -> str:
    largest = Decimal(AVRO_LONG_MAX).scaleb(-exponent)
    shown = text if len(text) <= 40 else text[:37] + "..."
    return f"amount {shown!r} is too large: at most {largest} {currency}"


def format_minor_units(minor: int, currency: str) -> str:
    """1177 EUR -> '11.77' (the inverse of `to_minor_units`, for files and display)."""
    exponent = minor_unit_exponent(currency)
    return str(Decimal(minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)))
