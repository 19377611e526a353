"""Code upload through django-import-export: its file handling (CSV, XLSX), preview and confirm step, ending in
the same all-or-nothing service as the API (books.services.code_creation.upload_request).

The file is read by books.parsers, the one upload reader of the API, the admin and the upload job (its header
rule: the column headed "code", else the first). The preview (import-export's dry run) checks every row with the service's own rules and reports each bad row with
its number: not a valid code, repeated in the file (with the row it repeats), or stored already in the tenant.
Duplicates refuse the whole file unless "skip duplicates" is ticked, exactly as the service does. The confirm step
does not save rows one by one through import-export: it hands the whole list to upload_request, which imports it
in one transaction (or, above 10,000 codes, queues a job).
"""

import tablib
from django import forms
from django.core.exceptions import ValidationError
from import_export import fields, resources
from import_export.formats.base_formats import CSV, XLSX
from import_export.forms import ConfirmImportForm, ImportForm
from import_export.results import Error, Result, RowResult

from core.exceptions import ApplicationError

from .inputs import is_valid_code, normalize_code
from .models import Code, CouponBook
from .parsers import HEADER, codes_from_file, upload_inspect
from .services.code_creation import codes_repeated, codes_stored

# Valid rows listed in the preview, and bad rows listed in the error report (the totals count them all).
PREVIEW_ROWS = 500
LISTED_ERRORS = 1000


class _BoundedCodeFile:
    """The file formats of the upload: read by books.parsers, with the API's bounds (inflated size, rows) and in a
    stream, instead of tablib's reading of every cell of every row into memory. The dataset holds the code column."""

    def is_binary(self):
        return True

    def get_read_mode(self):
        return "rb"

    def create_dataset(self, in_stream, **kwargs):
        data = in_stream if isinstance(in_stream, bytes) else str(in_stream).encode()
        try:
            codes = codes_from_file(data=data, filename=f"upload.{self.get_extension()}")
        except ApplicationError as exc:
            raise ValueError(exc.message) from None
        return tablib.Dataset(*[(code,) for code in codes], headers=["code"])


class CodeCSV(_BoundedCodeFile, CSV):
    pass


class CodeXLSX(_BoundedCodeFile, XLSX):
    pass


def dataset_codes(dataset) -> list[str] | None:
    """The codes of the file as books.parsers read them (the dataset's one column); None for a dataset that did
    not come from the upload formats above."""
    if list(dataset.headers or []) != [HEADER]:
        return None
    return [str(value) for value in dataset.get_col(0)]


def dataset_code_strings(dataset) -> list[str]:
    """The file's codes as the text the upload service receives (empty when the file has no code column)."""
    return dataset_codes(dataset) or []


class CodeUploadResource(resources.Resource):
    """The upload's one column. Built per request with the target book and the skip-duplicates choice."""

    code = fields.Field(attribute="code", column_name="code")

    class Meta:
        model = Code
        fields = ("code",)

    def __init__(self, book: CouponBook | None = None, skip_duplicates: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.book = book
        self.skip_duplicates = skip_duplicates

    @classmethod
    def get_display_name(cls) -> str:
        return "Codes"

    def import_data(self, dataset, dry_run=False, raise_errors=False, **kwargs) -> Result:
        """The preview: every row checked against the upload rules. Writes nothing (the confirm step does)."""
        result = self.get_result_class()()
        result.diff_headers = ["code"]
        raw_values = dataset_codes(dataset)
        if raw_values is None:
            result.append_base_error(Error(ValueError("The file needs a column headed 'code' (or only one column of codes).")))
            return result
        result.total_rows = len(raw_values)
        if self.book is None:
            result.append_base_error(Error(ValueError("Choose the coupon book to upload into.")))
            return result
        normalized = [normalize_code(raw) for raw in raw_values]
        valid = [code for code in normalized if is_valid_code(code)]
        stored = codes_stored(tenant_id=self.book.tenant_id, codes=list(dict.fromkeys(valid)))
        repeats = codes_repeated(normalized)
        listed_errors = shown = 0
        for number, (raw, code) in enumerate(zip(raw_values, normalized, strict=True), start=1):
            problem, duplicate = None, False
            if not is_valid_code(code):
                problem = "Not a code: 3 to 64 letters, digits, '-' or '_'."
            elif number in repeats:
                problem, duplicate = f"Repeats row {repeats[number]}.", True
            elif code in stored:
                problem, duplicate = "This code exists already in your codes.", True
            row_result = RowResult()
            if problem and duplicate and self.skip_duplicates:
                row_result.import_type = RowResult.IMPORT_TYPE_SKIP
                result.increment_row_result_total(row_result)
                continue
            if problem:
                row_result.import_type = RowResult.IMPORT_TYPE_INVALID
                result.increment_row_result_total(row_result)
                if listed_errors < LISTED_ERRORS:
                    result.append_invalid_row(number, {"code": raw}, ValidationError({"code": [problem]}))
                    listed_errors += 1
                continue
            row_result.import_type = RowResult.IMPORT_TYPE_NEW
            result.increment_row_result_total(row_result)
            if shown < PREVIEW_ROWS:
                row_result.diff = [code]
                result.append_row_result(row_result)
                shown += 1
        if not result.totals[RowResult.IMPORT_TYPE_NEW] and not result.has_validation_errors():
            result.append_base_error(Error(ValueError("The file holds no new code.")))
        return result


class CodeImportForm(ImportForm):
    book = forms.ModelChoiceField(queryset=CouponBook.objects.none(), help_text="The coupon book the codes go into.")
    skip_duplicates = forms.BooleanField(
        required=False,
        help_text="Import the other codes when some are repeated in the file or exist already "
        "(otherwise such a file is refused whole).",
    )
    field_order = ["book", "import_file", "format", "skip_duplicates", "resource"]

    def clean_import_file(self):
        """The API's bounds before the file is stored or read: its size, and an XLSX's inflated size and rows."""
        upload = self.cleaned_data["import_file"]
        try:
            upload_inspect(upload, upload.name or "")
        except ApplicationError as exc:
            raise ValidationError(exc.message) from None
        upload.seek(0)
        return upload


def preview_file_remove(model_admin, name: str) -> None:
    """Delete a stored preview file of the import (django-import-export's temporary storage)."""
    storage = model_admin.get_tmp_storage_class()(name=name, read_mode="rb", **model_admin.get_tmp_storage_class_kwargs())
    try:
        storage.remove()
    except FileNotFoundError:
        pass


class CodeConfirmImportForm(ConfirmImportForm):
    book = forms.ModelChoiceField(queryset=CouponBook.objects.none(), widget=forms.HiddenInput)
    skip_duplicates = forms.BooleanField(required=False, widget=forms.HiddenInput)
