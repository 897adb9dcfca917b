"""Money and decimal helpers shared by every domain.

Kobo never lets a binary float near an amount: inputs arrive as strings (or integers) and become ``Decimal``; amounts
stay exact until the one place API.md allows rounding (an invoice ``total``, half-up to the currency's minor unit).
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext

from app.errors import InvalidInput

# ISO 4217 minor units of the active circulating currencies. Fund codes (BOV, CHE, CLF, USN, ...) and metals are left
# out on purpose: nobody is invoiced in them, and accepting them would only hide a typo.
_ZERO_DECIMAL = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF"
_THREE_DECIMAL = "BHD IQD JOD KWD LYD OMR TND"
_TWO_DECIMAL = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF CNY "
    "COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS "
    "INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR "
    "MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD "
    "SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES VED WST XCD XCG YER ZAR ZMW ZWG"
)
CURRENCY_MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(_TWO_DECIMAL.split(), 2),
    **dict.fromkeys(_ZERO_DECIMAL.split(), 0),
    **dict.fromkeys(_THREE_DECIMAL.split(), 3),
}

# ASCII digits only: ``Decimal()`` would also take "1_000", "١٢" (Arabic-Indic digits), "nan" and "Infinity".
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Bounds that no real price, quantity or amount reaches, but that stop "1E+999999999" from turning into a billion-digit
# string in format_decimal or an inexact product in the pricing core.
MAX_TEXT_LENGTH = 100
MAX_INTEGER_DIGITS = 30
MAX_FRACTION_DIGITS = 30
# Enough digits that quantizing any value accepted above never raises InvalidOperation. A fresh context rather than a
# copy of the ambient one, whose traps (the pricing core traps Inexact) must not turn rounding into an error.
_WIDE = Context(prec=200, rounding=ROUND_HALF_UP)


def minor_units(currency: str) -> int:
    """Decimal places of ``currency``'s minor unit (2 for NGN, 0 for JPY, 3 for KWD)."""
    places = CURRENCY_MINOR_UNITS.get(currency.upper()) if isinstance(currency, str) else None
    if places is None:
        raise InvalidInput(f"unknown currency {currency!r}: expected an ISO 4217 code such as NGN or USD")
    return places


def validate_currency(code: str, field: str) -> str:
    """Return ``code`` upper-cased, or raise naming ``field``: clients write "ngn" and mean NGN."""
    if not isinstance(code, str) or code.strip().upper() not in CURRENCY_MINOR_UNITS:
        raise InvalidInput(f"unknown currency {code!r}: expected an ISO 4217 code such as NGN or USD", field=field)
    return code.strip().upper()


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round half-up to the currency's minor unit, keeping that scale (``12`` NGN -> ``12.00``).

    This is the single rounding step API.md allows, so it is explicit about the mode instead of trusting the ambient
    context (whose default is banker's rounding).
    """
    exponent = Decimal(1).scaleb(-minor_units(currency))
    with localcontext(_WIDE):
        rounded = amount.quantize(exponent, rounding=ROUND_HALF_UP)
    return rounded.copy_abs() if rounded.is_zero() else rounded  # never "-0.00" on an invoice


def parse_decimal(value: object, field: str) -> Decimal:
    """Turn a wire value into an exact ``Decimal`` or raise ``InvalidInput`` naming ``field``.

    Floats are refused rather than converted: ``0.1`` has already lost its value by the time it gets here. ``bool`` is
    refused although it is an ``int``, because ``true`` as a price is a client bug, not the number 1.
    """
    return check_bounds(decimal_syntax(value, field), field)


def decimal_syntax(value: object, field: str) -> Decimal:
    """``parse_decimal`` without the bounds: what the GraphQL ``Decimal`` scalar checks (the bounds are checked with
    the other input rules, which name the field)."""
    if isinstance(value, (bool, float)):
        raise InvalidInput(
            f'{field} must be a decimal string such as "12.50", not a {type(value).__name__}', field=field
        )
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidInput(f"{field} must be a finite decimal number", field=field)
        return value
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_TEXT_LENGTH or not _DECIMAL_TEXT.fullmatch(text):
            raise InvalidInput(f'{field} must be a decimal number such as "12.50", got {value[:40]!r}', field=field)
        return Decimal(text)
    raise InvalidInput(f'{field} must be a decimal string such as "12.50"', field=field)


def decimal_in_bounds(value: Decimal) -> bool:
    """A fast, conservative ``check_bounds``: True when it would pass unchanged (False: it decides)."""
    if not value.is_finite():
        return False
    exponent = int(value.as_tuple().exponent)
    return value.is_zero() or (value.adjusted() < MAX_INTEGER_DIGITS and -MAX_FRACTION_DIGITS <= exponent <= 0)


def check_bounds(value: Decimal, field: str) -> Decimal:
    """Reject NaN, infinities and magnitudes beyond the documented bounds."""
    if not value.is_finite():
        raise InvalidInput(f"{field} must be a finite decimal number", field=field)
    if not value.is_zero() and value.adjusted() >= MAX_INTEGER_DIGITS:
        raise InvalidInput(f"{field} is too large (at most {MAX_INTEGER_DIGITS} integer digits)", field=field)
    if not value.is_zero() and int(value.normalize().as_tuple().exponent) < -MAX_FRACTION_DIGITS:
        raise InvalidInput(f"{field} has more than {MAX_FRACTION_DIGITS} decimal places", field=field)
    # Clamp the scale into range: "0E+9" or "1.000…0" with fifty zeros are the same numbers with a sane scale, and an
    # unbounded scale would make format_decimal print unbounded strings.
    exponent = int(value.as_tuple().exponent)
    if exponent > 0 or exponent < -MAX_FRACTION_DIGITS:
        with localcontext(_WIDE):
            value = value.quantize(Decimal(1).scaleb(max(min(exponent, 0), -MAX_FRACTION_DIGITS)))
    return value.copy_abs() if value.is_zero() else value  # "-0" is not a different number


def format_decimal(value: Decimal) -> str:
    """Plain notation for the wire: never an exponent (``1E+3`` -> ``"1000"``), the given scale otherwise.

    The scale is kept because it carries meaning for clients ("2.000000" is a price quoted to six places).
    """
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"cannot format {value!r} as a decimal")
    if value.is_zero():
        value = value.copy_abs()  # "-0" is a rounding artefact, not a value
    return format(value, "f")
