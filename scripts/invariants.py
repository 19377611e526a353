"""The invariants of SPEC's domain rules, read straight from PostgreSQL after a check script's traffic: the
scale check (`make scale-check`) and the chaos check (`make chaos`) both end with them."""

INVARIANTS = {
    "codes redeemed above their uses": "SELECT count(*) FROM books_code WHERE max_uses IS NOT NULL AND redeemed_count > max_uses",
    "codes whose count differs from their standing redemptions": """
                SELECT count(*) FROM books_code c WHERE c.redeemed_count <> (
                    SELECT count(*) FROM redemptions_redemption r WHERE r.code_id = c.id AND r.reversed_at IS NULL)""",
    "codes over their uses counting active reservations": """
                SELECT count(*) FROM books_code c WHERE c.max_uses IS NOT NULL AND c.redeemed_count + (
                    SELECT count(*) FROM books_reservation v WHERE v.code_id = c.id AND v.status = 'active' AND v.expires_at > now()
                ) > c.max_uses""",
    "reservations consumed more than once": """
                SELECT count(*) FROM (SELECT reservation_id FROM redemptions_redemption WHERE reservation_id IS NOT NULL
                GROUP BY reservation_id HAVING count(*) > 1) x""",
    "users holding more codes than max_codes_per_user": """
                SELECT count(*) FROM (SELECT c.book_id, c.user_id FROM books_code c JOIN books_couponbook b ON b.id = c.book_id
                WHERE c.user_id IS NOT NULL AND c.state <> 'voided' AND b.max_codes_per_user IS NOT NULL
                GROUP BY c.book_id, c.user_id, b.max_codes_per_user HAVING count(*) > b.max_codes_per_user) x""",
    "users redeeming more than max_redemptions_per_user": """
                SELECT count(*) FROM (SELECT r.book_id, r.user_id FROM redemptions_redemption r JOIN books_couponbook b ON b.id = r.book_id
                WHERE r.reversed_at IS NULL AND b.max_redemptions_per_user IS NOT NULL
                GROUP BY r.book_id, r.user_id, b.max_redemptions_per_user HAVING count(*) > b.max_redemptions_per_user) x""",
    "expired reservations not yet marked": "SELECT count(*) FROM books_reservation WHERE status = 'active' AND expires_at < now() - interval '2 seconds'",
    "expired reservations with other than one expiry event": """
                SELECT count(*) FROM books_reservation v WHERE v.status = 'expired' AND (
                    SELECT count(*) FROM books_event e WHERE e.reservation_id = v.id AND e.kind = 'lock_expired') <> 1""",
    "expiry events for reservations not expired": """
                SELECT count(*) FROM books_event e JOIN books_reservation v ON v.id = e.reservation_id
                WHERE e.kind = 'lock_expired' AND v.status <> 'expired'""",
}


def invariants_broken(conn) -> list[str]:
    """Each broken invariant with its count of offending rows; empty when every one holds. `conn` is psycopg's."""
    problems = []
    for label, sql in INVARIANTS.items():
        found = conn.execute(sql).fetchone()[0]
        if found:
            problems.append(f"{label}: {found}")
    return problems
