"""Examples of the OpenAPI schema: one campaign's requests and answers (the README's integrator guide), so the
Swagger UI and generated clients show this domain's values, not placeholders."""

from drf_spectacular.utils import OpenApiExample

from core.exceptions import error_body, invalid_input_details
from core.middleware import SERVER_ERROR_MESSAGE

NOW = "2026-03-14T09:30:00Z"
LATER = "2026-03-14T09:40:00Z"

BOOK = {
    "id": 12,
    "name": "Spring sale",
    "description": "",
    "status": "active",
    "discount_type": "percent",
    "discount_value": "10.00",
    "currency": "",
    "product_ids": [],
    "valid_from": None,
    "valid_until": "2026-04-30T22:00:00Z",
    "max_codes_per_user": 2,
    "max_redemptions_per_user": 2,
    "uses_per_code": 1,
    "requires_assignment": True,
    "lock_ttl_seconds": 300,
    "max_redemptions": 500,
    "budget_amount": None,
    "min_order_amount": "50.00",
    "max_discount_amount": "20.00",
    "created_at": NOW,
    "updated_at": NOW,
}

CODE = {
    "code": "VIP-001",
    "book": 12,
    "state": "assigned",
    "user_id": "customer-42",
    "assigned_at": NOW,
    "max_uses": 1,
    "redeemed_count": 0,
    "uses_left": 1,
    "expires_at": None,
    "created_at": NOW,
}

REDEMPTION = {
    "id": 31,
    "code": "VIP-001",
    "book": 12,
    "user_id": "customer-42",
    "redeemed_at": NOW,
    "order_ref": "order-1001",
    "amount": "80.00",
    "product_id": "",
    "discount": "8.00",
    "currency": "EUR",
    "actor_type": "api_client",
    "actor_id": "cli_4f2a9c",
    "reversed": False,
    "reversed_at": None,
    "reversal_reason": "",
    "reversed_by_type": "",
    "reversed_by_id": "",
}

JOB = {
    "id": 7,
    "kind": "generate",
    "status": "running",
    "book": 12,
    "total": 50000,
    "done": 20000,
    "result": {},
    "error": "",
    "download_url": None,
    "created_at": NOW,
    "started_at": NOW,
    "finished_at": None,
}


def request(name: str, value: dict) -> OpenApiExample:
    return OpenApiExample(name, value=value, request_only=True)


def answer(name: str, value: object, status: int = 200) -> OpenApiExample:
    return OpenApiExample(name, value=value, response_only=True, status_codes=[str(status)])


BOOK_CREATE = [
    request(
        "Spring sale",
        {
            "name": "Spring sale",
            "status": "active",
            "discount_value": "10",
            "max_codes_per_user": 2,
            "max_redemptions_per_user": 2,
            "max_redemptions": 500,
            "min_order_amount": "50.00",
            "max_discount_amount": "20.00",
        },
    ),
    answer("Created", BOOK, 201),
]
BOOK_GET = [answer("Spring sale", BOOK)]
GENERATE = [
    request("5,000 codes", {"count": 5000, "pattern": "SPRING-********"}),
    answer("Created at once", {"created": 5000, "warnings": [], "skipped": [], "skipped_count": 0}, 201),
    answer("Running as a job", {**JOB, "status": "pending", "done": 0, "started_at": None}, 202),
]
UPLOAD = [
    request("A list of codes", {"codes": ["VIP-001", "VIP-002"], "skip_duplicates": True}),
    answer("Imported", {"created": 1, "warnings": [], "skipped": ["VIP-002"], "skipped_count": 1}, 201),
]
ASSIGN = [request("A customer", {"user_id": "customer-42"})]
ASSIGN_RANDOM = [*ASSIGN, answer("Assigned", {**CODE, "code": "SPRING-7KQ2M9XD"}, 201)]
ASSIGN_NAMED = [*ASSIGN, answer("Assigned", CODE)]
VALIDATE = [
    answer(
        "Valid",
        {"valid": True, "reason": "ok", "message": "The code can be redeemed.", "discount": "8.00", "currency": "EUR"},
    ),
    answer(
        "Held by a checkout",
        {
            "valid": False,
            "reason": "code_locked",
            "message": "The code is held by a checkout in progress.",
            "discount": None,
            "currency": "",
        },
    ),
]
LOCK = [
    request("Ten minutes", {"user_id": "customer-42", "ttl_seconds": 600}),
    answer(
        "Locked", {"token": "q7Rk2mWf9xZsT3vLp8NcYd4hJ0aB", "expires_at": LATER, "code": "VIP-001", "user_id": "customer-42"}, 201
    ),
]
UNLOCK = [
    request("With the lock token", {"user_id": "customer-42", "token": "q7Rk2mWf9xZsT3vLp8NcYd4hJ0aB"}),
    answer("Released", {"released": 1}),
]
REDEEM = [
    request(
        "With the lock token",
        {
            "user_id": "customer-42",
            "token": "q7Rk2mWf9xZsT3vLp8NcYd4hJ0aB",
            "order_ref": "order-1001",
            "amount": "80.00",
            "currency": "EUR",
        },
    ),
    answer("Redeemed", REDEMPTION, 201),
]
REVERSE = [
    request("A refund", {"reason": "order returned"}),
    answer(
        "Reversed",
        {
            **REDEMPTION,
            "reversed": True,
            "reversed_at": LATER,
            "reversal_reason": "order returned",
            "reversed_by_type": "api_client",
            "reversed_by_id": "cli_4f2a9c",
        },
    ),
]
JOB_GET = [
    answer("Running", JOB),
    answer(
        "An export, done",
        {
            **JOB,
            "kind": "export",
            "status": "succeeded",
            "book": None,
            "total": 80000,
            "done": 80000,
            "result": {"rows": 80000, "filename": "redemptions-acme-20260314-093000.xlsx"},
            "download_url": "https://coupons.example.com/api/v1/jobs/7/file/",
            "finished_at": LATER,
        },
    ),
]

# The error answers every operation documents (api.schema adds them to each error status).
INVALID_INPUT = error_body(
    "invalid_input",
    "amount: A valid number is required.",
    invalid_input_details({"field": "amount"}, "A valid number is required."),
)
THROTTLED = error_body("throttled", "Too many requests; retry in 12 second(s).", {"retry_after": 12})
SERVER_ERROR = error_body("server_error", SERVER_ERROR_MESSAGE)
ERROR_EXAMPLES = {400: INVALID_INPUT, 429: THROTTLED}

# Each operation's examples by its id (api.schema.operation reads them from here).
BY_OPERATION = {
    "book_create": BOOK_CREATE,
    "book_get": BOOK_GET,
    "codes_generate": GENERATE,
    "codes_upload": UPLOAD,
    "code_assign_random": ASSIGN_RANDOM,
    "code_assign": ASSIGN_NAMED,
    "code_lock": LOCK,
    "code_unlock": UNLOCK,
    "code_redeem": REDEEM,
    "code_validate": VALIDATE,
    "job_get": JOB_GET,
    "redemption_reverse": REVERSE,
}
