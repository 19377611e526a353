"""Distribution in the back office: the book page's form, the CSV of a small list at once, a large list's job page
with its progress bar and download link, and who may do it."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from books.models import Code
from books.services.code_creation import codes_insert
from books.tests.spreadsheets import xlsx_of
from core.models import Job
from tenants.models import Role
from tests.factories import CouponBookFactory
from tests.helpers import logged_in

pytestmark = pytest.mark.django_db


def free_codes(book, count: int) -> None:
    codes_insert(book=book, codes=[f"ADM{book.pk}X{i:05d}" for i in range(count)])


def held(book) -> dict[str, str]:
    return dict(Code.objects.filter(book=book, user_id__isnull=False).values_list("user_id", "code"))


def distribute(client, book, data: bytes, name: str = "list.csv"):
    return client.post(reverse("admin:books_couponbook_distribute", args=[book.pk]), {"file": SimpleUploadedFile(name, data)})


def test_the_book_page_offers_the_distribute_form_to_marketing(client, book):
    logged_in(client, book.tenant, Role.MARKETING)
    page = client.get(reverse("admin:books_couponbook_change", args=[book.pk])).content.decode()
    assert 'id="book-distribute"' in page
    assert reverse("admin:books_couponbook_distribute", args=[book.pk]) in page


def test_an_accountant_sees_no_form_and_cannot_distribute(client, book):
    free_codes(book, 3)
    logged_in(client, book.tenant, Role.ACCOUNTANT)
    page = client.get(reverse("admin:books_couponbook_change", args=[book.pk])).content.decode()
    assert 'id="book-distribute"' not in page
    response = distribute(client, book, b"user_id\nann\n")
    assert response.status_code == 302
    assert held(book) == {}


def test_a_small_list_answers_the_csv_at_once_and_again_assigns_nothing_new(client, book):
    # Given
    free_codes(book, 5)
    logged_in(client, book.tenant, Role.MARKETING)
    data = xlsx_of([["email", "user_id"], ["a@x", "ann"], ["b@x", "bob"]])
    # When
    response = distribute(client, book, data, "list.xlsx")
    # Then
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="distribution-book-{book.pk}.csv"'
    codes = held(book)
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows == [["user_id", "code", "status"], ["ann", codes["ann"], "assigned"], ["bob", codes["bob"], "assigned"]]
    again = list(csv.reader(io.StringIO(distribute(client, book, data, "list.xlsx").content.decode())))
    assert [row[2] for row in again[1:]] == ["already_assigned", "already_assigned"]
    assert held(book) == codes


def test_an_exhausted_book_shows_the_message_and_assigns_nothing(client, book):
    free_codes(book, 1)
    logged_in(client, book.tenant, Role.ADMIN)
    response = client.post(
        reverse("admin:books_couponbook_distribute", args=[book.pk]),
        {"file": SimpleUploadedFile("l.csv", b"a\nb\n")},
        follow=True,
    )
    assert "Not distributed" in response.content.decode()
    assert held(book) == {}


def test_another_tenants_book_is_not_found(client, book, other_tenant):
    foreign = CouponBookFactory(tenant=other_tenant)
    free_codes(foreign, 2)
    logged_in(client, book.tenant, Role.ADMIN)
    assert distribute(client, foreign, b"ann\n").status_code == 404
    assert held(foreign) == {}


def test_a_large_list_runs_as_a_job_whose_page_shows_progress_and_the_csv_download(
    client, book, settings, tmp_path, django_capture_on_commit_callbacks
):
    from coupons_site.celery import app

    settings.COUPONS = {**settings.COUPONS, "SYNC_DISTRIBUTION_LIMIT": 2}
    settings.MEDIA_ROOT = tmp_path
    free_codes(book, 10)
    logged_in(client, book.tenant, Role.MARKETING)
    previous, app.conf.task_always_eager = app.conf.task_always_eager, True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = distribute(client, book, b"user_id\nu1\nu2\nu3\n")
    finally:
        app.conf.task_always_eager = previous
    job = Job.objects.get(book=book, kind=Job.Kind.DISTRIBUTE)
    assert response.status_code == 302 and response["Location"] == reverse("admin:core_job_change", args=[job.pk])
    assert job.status == Job.Status.SUCCEEDED, job.error
    page = client.get(response["Location"]).content.decode()
    download_url = reverse("dashboard:job_download", args=[job.pk])
    assert 'id="job-bar"' in page and download_url in page and "Download the CSV" in page
    assert 'id="job-download" hidden' not in page
    progress = client.get(reverse("dashboard:job_progress", args=[job.pk])).json()
    assert (progress["done"], progress["total"], progress["download_url"]) == (3, 3, download_url)
    assert "Assigned 3 codes" in progress["message"]
    download = client.get(download_url)
    assert download.status_code == 200 and download["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(b"".join(download.streaming_content).decode())))
    codes = held(book)
    assert rows == [["user_id", "code", "status"]] + [[u, codes[u], "assigned"] for u in ("u1", "u2", "u3")]
    # An accountant (no change_code) gets no link and no file: the CSV holds codes.
    client.logout()
    logged_in(client, book.tenant, Role.ACCOUNTANT)
    assert client.get(reverse("dashboard:job_progress", args=[job.pk])).json()["download_url"] is None
    assert client.get(download_url).status_code == 404
