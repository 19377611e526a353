"""Content negotiation: the API produces JSON, and a view may produce one file type besides (`produces`).

An Accept header that admits neither answers 406 `not_acceptable`, itself as a JSON error (DRF renders an error
with the first renderer when negotiation failed). An absent Accept header, or `*/*`, gets JSON.
"""

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.utils.mediatypes import media_type_matches, order_by_precedence


class ApiContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        produces = getattr(request.parser_context.get("view"), "produces", None) if request.parser_context else None
        if produces:
            accepted = [media for group in order_by_precedence(self.get_accept_list(request)) for media in group]
            if any(media_type_matches(produces, media) for media in accepted if media not in ("*/*",)):
                # The file is answered by the view itself; JSON (a job, an error) is rendered as usual.
                return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
