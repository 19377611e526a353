"""OPTIONS answers: the endpoint's name, description and formats. The OpenAPI schema is the field reference;
DRF's default introspection of serializers does not fit views that parse with several input serializers."""

from rest_framework.metadata import SimpleMetadata


class ApiMetadata(SimpleMetadata):
    def determine_actions(self, request, view):
        return {}
