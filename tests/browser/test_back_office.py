"""The back office in a real browser (Playwright driving Debian's chromium, headless) against the live server:
marketing logs in, creates a book, generates codes and sees them, distributes codes to an uploaded list and
downloads the CSV; an accountant logs in and downloads the Excel export. Then a large list: the distribution runs
as a job in a real Celery worker, its page follows the progress and serves the CSV, and the dashboard shows the
discount given in two currencies. In a test of its own, marketing creates a book with a budget and sees a redeem
beyond it refused. Screenshots of each step are kept under artifacts/screenshots/ (a CI artifact,
ignored by git)."""

import csv
import os
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.utils import timezone
from openpyxl import load_workbook

from books.models import Code, CouponBook
from books.services.books import book_create
from books.services.code_creation import codes_generate
from books.services.codes import code_assign, code_redeem, redemption_reverse
from core.actors import Actor
from core.exceptions import ApplicationError
from core.models import Job
from core.services import job_claim, job_progress_report
from redemptions.exports import COLUMNS
from redemptions.models import Redemption
from tenants.models import Role
from tests.factories import TenantFactory
from tests.helpers import PASSWORD, staff_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
# No network and no first-run work: the browser only ever talks to the live server on 127.0.0.1.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots"


@pytest.fixture
def browser(monkeypatch):
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium before the tests")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still plain
    # synchronous calls (the live server answers the browser in its own thread).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _login(browser, live_server, username: str):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#dashboard")
    return context, page


def _shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_marketing_creates_and_fills_a_book_then_the_accountant_downloads_the_export(browser, live_server, tmp_path):
    try:
        _scenario(browser, live_server, tmp_path)
    finally:
        # Under Playwright's sync API this test body runs in its own context, so Django gave it its own database
        # connection (connections are per context); close it here or the test database cannot be dropped at the end.
        connections.close_all()


def _scenario(browser, live_server, tmp_path):
    tenant = TenantFactory(name="Browser Shop", slug="browser-shop")
    staff_user(tenant, Role.MARKETING, username="mia-marketing")
    staff_user(tenant, Role.ACCOUNTANT, username="abe-accountant")

    # Marketing: log in, create a book, generate codes, see them.
    context, page = _login(browser, live_server, "mia-marketing")
    _shot(page, "01-marketing-dashboard")
    page.goto(f"{live_server.url}/admin/books/couponbook/add/")
    page.fill("#id_name", "Browser spring sale")
    page.select_option("#id_status", "active")
    page.fill("#id_discount_value", "10")
    page.click("input[name=_continue]")
    page.wait_for_selector("#book-generate")
    book = CouponBook.objects.get(name="Browser spring sale")
    assert book.tenant == tenant
    _shot(page, "02-marketing-book-page")
    page.fill("#book-generate input[name=count]", "40")
    page.fill("#book-generate input[name=pattern]", "SPRING-######")
    page.click("#book-generate input[type=submit]")
    page.wait_for_selector("#result_list")
    assert "Generated 40 code(s)" in page.inner_text(".messagelist")
    shown = page.locator("#result_list tbody tr").count()
    assert shown == 40 == Code.objects.filter(book=book).count()
    first_code = page.locator("#result_list tbody tr th a").first.inner_text()
    assert first_code.startswith("SPRING-")
    _shot(page, "03-marketing-codes")

    # Distribution: upload a list of newsletter subscribers on the book page, get back the CSV for the mailing tool.
    subscribers = tmp_path / "subscribers.csv"
    subscribers.write_text("email,user_id\nann@example.com,sub-ann\nbob@example.com,sub-bob\ncid@example.com,sub-cid\n")
    page.goto(f"{live_server.url}/admin/books/couponbook/{book.pk}/change/")
    page.set_input_files("#book-distribute input[name=file]", str(subscribers))
    _shot(page, "03b-marketing-distribute")
    with page.expect_download() as download_info:
        page.click("#book-distribute input[type=submit]")
    download = download_info.value
    assert download.suggested_filename == f"distribution-book-{book.pk}.csv"
    mailing = tmp_path / download.suggested_filename
    download.save_as(mailing)
    rows = list(csv.reader(mailing.read_text().splitlines()))
    held = dict(Code.objects.filter(book=book, user_id__isnull=False).values_list("user_id", "code"))
    assert rows == [["user_id", "code", "status"]] + [[u, held[u], "assigned"] for u in ("sub-ann", "sub-bob", "sub-cid")]

    # A long job's page: its progress bar follows the job while it runs, then shows how it ended.
    job = Job.objects.create(tenant=tenant, book=book, kind=Job.Kind.GENERATE, total=200, actor_type="staff")
    job = job_claim(job_id=job.pk)
    job_progress_report(job=job, done=20)
    page.goto(f"{live_server.url}/admin/core/job/{job.pk}/change/")
    assert page.get_attribute("#job-bar", "value") == "20"
    job_progress_report(job=job, done=120)
    page.wait_for_function("document.getElementById('job-bar').value == 120")
    _shot(page, "04-marketing-job-running")
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.SUCCEEDED, done=200, result={"created": 200}, finished_at=timezone.now()
    )
    page.wait_for_function("document.getElementById('job-status').textContent === 'Succeeded'")
    assert page.inner_text("#job-result") == "Created 200 codes."
    assert page.get_attribute("#job-bar", "value") == "200"
    context.close()

    # Some checkouts redeem codes (the integrator's part, through the same services as the API).
    api = Actor.system("browser-test")
    for index, code in enumerate(Code.objects.filter(book=book, state=Code.State.FREE).order_by("code")[:3]):
        code_assign(tenant=tenant, code=code.code, user_id=f"customer-{index}", actor=api)
        code_redeem(
            tenant=tenant,
            code=code.code,
            user_id=f"customer-{index}",
            actor=api,
            order_ref=f"=ORDER-{index}",
            amount=Decimal("80"),
            currency="EUR",
        )

    # The accountant: log in, open the redemption log, download the workbook.
    context, page = _login(browser, live_server, "abe-accountant")
    assert "Browser spring sale" in page.inner_text("#dashboard-books")
    _shot(page, "05-accountant-dashboard")
    page.goto(f"{live_server.url}/admin/redemptions/redemption/")
    page.wait_for_selector("#result_list")
    _shot(page, "06-accountant-redemptions")
    with page.expect_download() as download_info:
        page.click("#export-excel")
    download = download_info.value
    assert download.suggested_filename.startswith("redemptions-browser-shop-")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    context.close()

    workbook = load_workbook(saved)
    rows = list(workbook["Redemptions"].iter_rows(values_only=True))
    assert rows[0] == COLUMNS
    records = [dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]]
    assert sorted(r["order_ref"] for r in records) == ["'=ORDER-0", "'=ORDER-1", "'=ORDER-2"]  # escaped, never a formula
    assert all(Decimal(str(r["discount"])) == Decimal("8.00") for r in records)
    total = next(row for row in workbook["Summary"].iter_rows(values_only=True) if row[0] == "Total")
    assert total[3:5] == ("EUR", 3) and Decimal(str(total[6])) == Decimal("24.00")


def test_a_marketer_distributes_codes_as_a_job_and_the_dashboard_totals_two_currencies(
    browser, live_server, tmp_path, settings, redis_worker
):
    try:
        _distribution_job_scenario(browser, live_server, tmp_path, settings)
    finally:
        connections.close_all()  # see the first test


def _distribution_job_scenario(browser, live_server, tmp_path, settings):
    # Lists above 5 users run as a job (10,000 in production), in the real worker of the redis_worker fixture.
    settings.COUPONS = {**settings.COUPONS, "SYNC_DISTRIBUTION_LIMIT": 5}
    tenant = TenantFactory(name="Two Shops", slug="two-shops")
    staff_user(tenant, Role.MARKETING, username="max-marketing")
    marketer = Actor.system("browser-test")
    euro = book_create(
        tenant=tenant, name="Newsletter 5 EUR", status="active", discount_type="fixed", discount_value="5", currency="EUR"
    )
    codes_generate(book=euro, count=60, pattern="NEWS-######", actor=marketer)
    dollar = book_create(
        tenant=tenant,
        name="US launch: 15 USD off your first order in the new American shop",  # a long name for the chart
        status="active",
        discount_type="fixed",
        discount_value="15",
        currency="USD",
    )
    codes_generate(book=dollar, count=10, pattern="USA-######", actor=marketer)

    # The marketer uploads the newsletter's subscribers (with a repeat and a blank row) on the book page.
    subscribers = [f"subscriber-{n:02d}" for n in range(1, 41)]
    upload = tmp_path / "newsletter.csv"
    upload.write_text("user_id\n" + "\n".join([*subscribers, "subscriber-07", ""]) + "\n")
    context, page = _login(browser, live_server, "max-marketing")
    page.goto(f"{live_server.url}/admin/books/couponbook/{euro.pk}/change/")
    page.set_input_files("#book-distribute input[name=file]", str(upload))
    page.click("#book-distribute input[type=submit]")

    # It became a job: its page follows the progress until the worker is done, then offers the CSV.
    page.wait_for_selector("#job-progress")
    assert "/admin/core/job/" in page.url
    _shot(page, "07-marketing-distribution-job")
    page.wait_for_function("document.getElementById('job-status').textContent === 'Succeeded'")
    page.wait_for_selector("#job-download:not([hidden])")
    assert page.get_attribute("#job-bar", "value") == page.get_attribute("#job-bar", "max") == "40"
    assert page.inner_text("#job-result").startswith("Assigned 40 codes")
    _shot(page, "08-marketing-distribution-done")
    with page.expect_download() as download_info:
        page.click("#job-download-link")
    mailing = tmp_path / "mailing.csv"
    download_info.value.save_as(mailing)
    rows = list(csv.reader(mailing.read_text().splitlines()))
    held = dict(Code.objects.filter(book=euro, user_id__isnull=False).values_list("user_id", "code"))
    assert rows == [["user_id", "code", "status"]] + [[user, held[user], "assigned"] for user in subscribers]
    assert len(set(held.values())) == 40

    # Subscribers redeem in the EUR shop, American customers in the USD shop, one order is refunded.
    checkout = Actor.system("checkout")
    for user in subscribers[:7]:
        code_redeem(tenant=tenant, code=held[user], user_id=user, actor=checkout, amount=Decimal("24.95"), currency="EUR")
    for index, code in enumerate(Code.objects.filter(book=dollar).order_by("code")[:3]):
        code_assign(tenant=tenant, code=code.code, user_id=f"us-{index}", actor=checkout)
        code_redeem(tenant=tenant, code=code.code, user_id=f"us-{index}", actor=checkout, amount=Decimal("99.00"), currency="USD")
    redemption_reverse(
        tenant=tenant, redemption_id=Redemption.objects.filter(book=dollar).first().pk, actor=checkout, reason="refund"
    )

    # The dashboard gives the discount per currency, two decimals each, never one sum of both.
    page.goto(f"{live_server.url}/admin/")
    page.wait_for_selector("#dashboard")
    assert page.inner_text("#dashboard-discount").splitlines() == ["35.00 EUR", "30.00 USD"]
    table = page.inner_text("#dashboard-books")
    assert "35.00 EUR" in table and "30.00 USD" in table
    chart = page.locator("svg[aria-label='Redemptions per book']")
    assert chart.locator("g.row").count() == 2
    _shot(page, "09-marketing-dashboard-two-currencies")
    context.close()


def test_marketing_creates_a_budgeted_book_and_sees_a_redeem_beyond_it_refused(browser, live_server):
    try:
        _budget_scenario(browser, live_server)
    finally:
        connections.close_all()  # see the first test


def _budget_scenario(browser, live_server):
    tenant = TenantFactory(name="Budget Shop", slug="budget-shop")
    staff_user(tenant, Role.MARKETING, username="bea-marketing")
    context, page = _login(browser, live_server, "bea-marketing")

    # A budget is money in the book's currency: without one the form says so on the currency field.
    page.goto(f"{live_server.url}/admin/books/couponbook/add/")
    page.fill("#id_name", "Twenty off, fifty in all")
    page.select_option("#id_status", "active")
    page.fill("#id_discount_value", "20")  # percent
    page.fill("#id_budget_amount", "50")
    page.click("input[name=_continue]")
    page.wait_for_selector(".field-currency .errorlist")
    assert "A budget is an amount in the book's currency" in page.inner_text(".field-currency .errorlist")
    _shot(page, "10-marketing-budget-needs-currency")
    page.fill("#id_currency", "EUR")
    page.click("input[name=_continue]")
    page.wait_for_selector("#book-limits")
    book = CouponBook.objects.get(name="Twenty off, fifty in all")
    assert (book.discount_type, book.budget_amount, book.currency) == ("percent", Decimal("50.00"), "EUR")
    page.fill("#book-generate input[name=count]", "5")
    page.fill("#book-generate input[name=pattern]", "TWENTY-####")
    page.click("#book-generate input[type=submit]")
    page.wait_for_selector("#result_list")

    # Checkouts redeem 20 % of 100: two fit the budget (40 of 50), the third would take it to 60 and is refused.
    api = Actor.system("browser-test")
    codes = list(Code.objects.filter(book=book).order_by("code").values_list("code", flat=True))
    for index, code in enumerate(codes[:2]):
        code_assign(tenant=tenant, code=code, user_id=f"shopper-{index}", actor=api)
        code_redeem(tenant=tenant, code=code, user_id=f"shopper-{index}", actor=api, amount=Decimal("100"), currency="EUR")
    code_assign(tenant=tenant, code=codes[2], user_id="shopper-2", actor=api)
    with pytest.raises(ApplicationError) as refused:
        code_redeem(tenant=tenant, code=codes[2], user_id="shopper-2", actor=api, amount=Decimal("100"), currency="EUR")
    assert refused.value.code == "book_budget_exhausted"

    # The book page shows what the budget gave and what is left.
    page.goto(f"{live_server.url}/admin/books/couponbook/{book.pk}/change/")
    limits = page.inner_text("#book-limits")
    assert "40.00 EUR of 50.00 EUR given; 10.00 EUR left" in limits
    _shot(page, "11-marketing-budget-used")
    context.close()
