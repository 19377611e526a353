"""Content negotiation: the API produces JSON, and a view may produce file types besides (`produces`, a tuple).

An Accept header that admits neither answers 406 `not_acceptable`, itself as a JSON error (DRF renders an error
with the first renderer when negotiation failed). An absent Accept header, or `*/*`, gets JSON, without DRF's parsing of the header (about 50 us a request, README
"Performance").
"""

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.utils.mediatypes import media_type_matches, order_by_precedence


class ApiContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        produces = getattr(request.parser_context.get("view"), "produces", None) if request.parser_context else None
        if produces:
            accepted = [media for group in order_by_precedence(self.get_accept_list(request)) for media in group]
            if any(media_type_matches(kind, media) for kind in produces for media in accepted if media != "*/*"):
                # The file is answered by the view itself; JSON (a job, an error) is rendered as usual.
                return renderers[0], renderers[0].media_type
        if (
            request.META.get("HTTP_ACCEPT", "*/*") == "*/*"
            and not format_suffix
            and not request.query_params.get(self.settings.URL_FORMAT_OVERRIDE)
        ):
            return renderers[0], renderers[0].media_type  # what DRF answers to */*, skipping its parse
        return super().select_renderer(request, renderers, format_suffix)
