"""An integrator's whole campaign through the Python client generated from the OpenAPI schema (`make client`).

Typed as an integrator would write it (mypy --strict passes over it), run against a live service by
api/tests/test_generated_client.py:

    python clients/example_campaign.py http://127.0.0.1:8000 cli_… SECRET OUT_DIR

Every answer is checked: a success parses into its model, an error into ErrorOutput. It writes the two
workbooks it downloads to OUT_DIR and prints a JSON summary.
"""

import io
import json
import sys
import time
from pathlib import Path
from typing import Any, TypeVar

from coupons_client import AuthenticatedClient, Client
from coupons_client.api.assignment import code_assign, code_assign_random, user_codes_list
from coupons_client.api.auth import token_obtain
from coupons_client.api.books import book_create
from coupons_client.api.checkout import code_lock, code_redeem, code_unlock, code_validate
from coupons_client.api.codes import code_get, codes_generate, codes_upload
from coupons_client.api.jobs import job_file_download, job_get
from coupons_client.api.redemptions import redemption_reverse, redemptions_export, redemptions_list
from coupons_client.models import (
    AssignInputRequest,
    BookInputRequest,
    BookOutput,
    BookStatusEnum,
    CodeOutput,
    CodeOutputPage,
    CreationOutput,
    ErrorCodeEnum,
    ErrorOutput,
    GenerateInputRequest,
    JobOutput,
    JobStatusEnum,
    LockInputRequest,
    RedeemInputRequest,
    RedemptionOutput,
    RedemptionOutputCursorPage,
    ReservationOutput,
    ReverseInputRequest,
    TokenObtainInputRequest,
    TokenPairOutput,
    UnlockInputRequest,
    UnlockOutput,
    UploadFileInputRequest,
    UploadJsonInputRequest,
    ValidationOutput,
    ValidationReasonEnum,
)
from coupons_client.types import File, Response

CUSTOMER = "customer-42"
T = TypeVar("T")


def expect(response: Response[Any], model: type[T], status: int) -> T:
    """The parsed answer, which must be `model` with this status (an ErrorOutput stops the campaign)."""
    parsed = response.parsed
    if isinstance(parsed, ErrorOutput):
        raise SystemExit(f"{response.status_code} {parsed.error.code.value}: {parsed.error.message}")
    assert response.status_code == status, (response.status_code, parsed)
    assert isinstance(parsed, model), parsed
    return parsed


def job_finished(client: AuthenticatedClient, job: JobOutput) -> JobOutput:
    """Poll a job until it has ended (it must succeed)."""
    for _ in range(300):
        job = expect(job_get.sync_detailed(job.id, client=client), JobOutput, 200)
        if job.status in (JobStatusEnum.SUCCEEDED, JobStatusEnum.FAILED):
            break
        time.sleep(0.2)
    assert job.status == JobStatusEnum.SUCCEEDED, (job.status, job.error)
    return job


def campaign(base_url: str, client_id: str, client_secret: str, out: Path) -> dict[str, object]:
    anonymous = Client(base_url=base_url, raise_on_unexpected_status=True)
    credentials = TokenObtainInputRequest(client_id=client_id, client_secret=client_secret)
    tokens = expect(token_obtain.sync_detailed(client=anonymous, body=credentials), TokenPairOutput, 200)
    api = AuthenticatedClient(base_url=base_url, token=tokens.access, raise_on_unexpected_status=True)

    # A book: 10 % off, two codes and two redemptions per customer, active now.
    spring = BookInputRequest(
        name="Spring sale", status=BookStatusEnum.ACTIVE, discount_value="10", max_codes_per_user=2, max_redemptions_per_user=2
    )
    book = expect(book_create.sync_detailed(client=api, body=spring), BookOutput, 201)

    # Codes: a JSON list, a CSV file, and a generation large enough to run as a job (202, polled).
    listed = UploadJsonInputRequest(codes=["VIP-001", "VIP-002"])
    uploaded = expect(codes_upload.sync_detailed(book.id, client=api, body=listed), CreationOutput, 201)
    csv = File(payload=io.BytesIO(b"code\nVIP-003\nVIP-004\n"), file_name="codes.csv", mime_type="text/csv")
    from_file = expect(
        codes_upload.sync_detailed(book.id, client=api, body=UploadFileInputRequest(file=csv)), CreationOutput, 201
    )
    generation = GenerateInputRequest(count=60, pattern="SPRING-######")
    job = job_finished(api, expect(codes_generate.sync_detailed(book.id, client=api, body=generation), JobOutput, 202))

    # Assignment: a named code, then a random free code of the book. In this order the random pick cannot be
    # VIP-001 itself (one time in 64 it was, and the second redeem below found the code used up).
    assign = AssignInputRequest(user_id=CUSTOMER)
    vip = expect(code_assign.sync_detailed("VIP-001", client=api, body=assign), CodeOutput, 200)
    random_code = expect(code_assign_random.sync_detailed(book.id, client=api, body=assign), CodeOutput, 201)

    # Checkout: validate, lock, abandon (unlock), lock again, redeem with the token and an Idempotency-Key.
    validation = expect(
        code_validate.sync_detailed("VIP-001", client=api, user_id=CUSTOMER, amount="80.00", currency="EUR"),
        ValidationOutput,
        200,
    )
    assert validation.valid and validation.reason == ValidationReasonEnum.OK and validation.discount == "8.00"
    assert validation.currency == "EUR"
    lock = expect(code_lock.sync_detailed("VIP-001", client=api, body=LockInputRequest(user_id=CUSTOMER)), ReservationOutput, 201)
    unlock = UnlockInputRequest(user_id=CUSTOMER, token=lock.token)
    released = expect(code_unlock.sync_detailed("VIP-001", client=api, body=unlock), UnlockOutput, 200)
    assert released.released == 1
    lock = expect(
        code_lock.sync_detailed("VIP-001", client=api, body=LockInputRequest(user_id=CUSTOMER, ttl_seconds=600)),
        ReservationOutput,
        201,
    )
    redeem = RedeemInputRequest(user_id=CUSTOMER, token=lock.token, order_ref="order-1001", amount="80.00", currency="EUR")
    first = code_redeem.sync_detailed("VIP-001", client=api, body=redeem, idempotency_key="order-1001-redeem")
    redemption = expect(first, RedemptionOutput, 201)
    assert (redemption.discount, redemption.currency) == ("8.00", "EUR")
    replay = code_redeem.sync_detailed("VIP-001", client=api, body=redeem, idempotency_key="order-1001-redeem")
    assert expect(replay, RedemptionOutput, 201).id == redemption.id
    assert replay.headers.get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first.headers
    # The random code, redeemed without a lock (locks and redeems at once).
    direct = RedeemInputRequest(user_id=CUSTOMER, order_ref="order-1002", amount="20.00", currency="EUR")
    second = expect(code_redeem.sync_detailed(random_code.code, client=api, body=direct), RedemptionOutput, 201)

    # An error parses into the documented model: invalid_input names the field.
    refused = code_redeem.sync_detailed("VIP-002", client=api, body=RedeemInputRequest(user_id=CUSTOMER, amount="80,00"))
    assert isinstance(refused.parsed, ErrorOutput) and refused.status_code == 400
    assert refused.parsed.error.code == ErrorCodeEnum.INVALID_INPUT and refused.parsed.error.details.field == "amount"
    unknown = code_get.sync_detailed("NO-SUCH-CODE", client=api)
    assert isinstance(unknown.parsed, ErrorOutput) and unknown.parsed.error.code == ErrorCodeEnum.CODE_NOT_FOUND

    # The customer's codes (pages by number, with a count) and the redemption log (cursor pages).
    mine = expect(user_codes_list.sync_detailed(CUSTOMER, client=api, book=book.id), CodeOutputPage, 200)
    assert mine.count == 2 and {code.code for code in mine.results} == {vip.code, random_code.code}
    log = expect(redemptions_list.sync_detailed(client=api, book=book.id), RedemptionOutputCursorPage, 200)
    assert [entry.id for entry in log.results] == [second.id, redemption.id]

    # A refund: the redemption stays in the log, reversed.
    reversal = ReverseInputRequest(reason="order returned")
    reversed_one = expect(redemption_reverse.sync_detailed(redemption.id, client=api, body=reversal), RedemptionOutput, 200)
    assert reversed_one.reversed_ and reversed_one.reversed_at is not None

    # Excel: a small export answers the workbook; a large one (above COUPONS_EXPORT_SYNC_ROWS) a job to download.
    small = redemptions_export.sync_detailed(client=api, book=book.id, reversed_=True)
    workbook = expect(small, File, 200)
    assert small.headers["Content-Disposition"].startswith("attachment; filename=")
    (out / "redemptions.xlsx").write_bytes(workbook.payload.read())
    export_job = job_finished(api, expect(redemptions_export.sync_detailed(client=api, book=book.id), JobOutput, 202))
    assert export_job.download_url is not None
    download = job_file_download.sync_detailed(export_job.id, client=api)
    (out / "export-job.xlsx").write_bytes(expect(download, File, 200).payload.read())

    return {
        "book": book.id,
        "uploaded": uploaded.created + from_file.created,
        "generated": job.result.created,
        "redemptions": [redemption.id, second.id],
        "reversed": reversed_one.id,
        "export_rows": export_job.result.rows,
    }


if __name__ == "__main__":
    base, client_id, secret, out_dir = sys.argv[1:5]
    print(json.dumps(campaign(base, client_id, secret, Path(out_dir))))
