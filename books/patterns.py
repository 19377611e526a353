"""Code patterns: parsing, the size of their space, and drawing codes from them with a cryptographic source.

`#` is a digit, `?` a letter, `*` any symbol of the charset; every other character is literal. The default
charset leaves out look-alikes (0/O, 1/I/L).
"""

import math
import secrets
from dataclasses import dataclass

from django.conf import settings

from core.exceptions import ApplicationError

DEFAULT_CHARSET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
DEFAULT_PATTERN = "*" * 10
DIGITS = "0123456789"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CODE_SYMBOLS = frozenset(DIGITS + LETTERS + "-_")


@dataclass(frozen=True)
class Pattern:
    text: str
    # One entry per position: the alphabet drawn from, or a one-character literal.
    positions: tuple[str, ...]
    literal: tuple[bool, ...]

    @property
    def space(self) -> int:
        """How many distinct codes the pattern can produce."""
        return math.prod(len(alphabet) for alphabet, fixed in zip(self.positions, self.literal, strict=True) if not fixed)

    def matches(self, code: str) -> bool:
        return len(code) == len(self.positions) and all(c in alphabet for c, alphabet in zip(code, self.positions, strict=True))


def pattern_parse(pattern: str | None = None, charset: str | None = None) -> Pattern:
    pattern = pattern or DEFAULT_PATTERN
    charset = charset or DEFAULT_CHARSET
    charset = "".join(dict.fromkeys(charset.strip().upper()))  # de-duplicated, order kept
    bad = sorted(set(charset) - CODE_SYMBOLS)
    if bad or len(charset) < 2:
        raise ApplicationError(
            "invalid_pattern", "The charset needs at least two symbols among A-Z, 0-9, '-' and '_'.", {"invalid": bad[:20]}
        )
    pattern = pattern.strip()
    if not 3 <= len(pattern) <= 64:
        raise ApplicationError("invalid_pattern", "A pattern makes codes of 3 to 64 characters.", {"length": len(pattern)})
    positions, literal = [], []
    for symbol in pattern:
        if symbol == "#":
            positions.append(DIGITS)
        elif symbol == "?":
            positions.append(LETTERS)
        elif symbol == "*":
            positions.append(charset)
        else:
            upper = symbol.upper()
            if upper not in CODE_SYMBOLS:
                raise ApplicationError(
                    "invalid_pattern",
                    f"{symbol!r} cannot appear in a code: use letters, digits, '-', '_' or the symbols # ? *.",
                    {"symbol": symbol},
                )
            positions.append(upper)
            literal.append(True)
            continue
        literal.append(False)
    if all(literal):
        raise ApplicationError(
            "pattern_no_random_symbol",
            "The pattern has no random symbol (#, ? or *): it can make only one code.",
            {"pattern": pattern},
        )
    return Pattern(text=pattern, positions=tuple(positions), literal=tuple(literal))


def pattern_capacity_check(pattern: Pattern, count: int) -> list[str]:
    """Refuse a count the pattern cannot hold; return warnings when the codes would be easy to guess."""
    space = pattern.space
    if count > space:
        raise ApplicationError(
            "pattern_space_too_small",
            f"The pattern {pattern.text!r} allows only {space:,} distinct codes; {count:,} were asked for.",
            {"space": space, "count": count},
        )
    warnings = []
    ratio = settings.COUPONS["GUESS_WARNING_RATIO"]
    if space < count * ratio:
        warnings.append(
            f"Codes would be easy to guess: one random try in {space // max(count, 1):,} hits a valid code "
            f"(pattern space {space:,}). Use a longer pattern."
        )
    return warnings


def _column(alphabet: str, count: int) -> str:
    """`count` symbols drawn uniformly from `alphabet` with rejection sampling over random bytes.

    bytes.translate maps (and drops the biased tail of) a whole buffer at C speed: a million ten-symbol codes
    cost ten translate calls rather than ten million secrets.choice calls.
    """
    size = len(alphabet)
    usable = 256 - 256 % size  # bytes at or above this would favour the first symbols
    table = bytes((alphabet[b % size].encode() if b < usable else b"\x00")[0] for b in range(256))
    drop = bytes(range(usable, 256))
    out = b""
    while len(out) < count:
        need = count - len(out)
        out += secrets.token_bytes(need + need // 4 + 16).translate(table, drop)
    return out[:count].decode()


def pattern_draw(pattern: Pattern, count: int) -> list[str]:
    """`count` random codes of the pattern (possibly with repeats; the caller de-duplicates)."""
    columns = [
        alphabet * count if fixed else _column(alphabet, count)
        for alphabet, fixed in zip(pattern.positions, pattern.literal, strict=True)
    ]
    return ["".join(symbols) for symbols in zip(*columns, strict=True)]
