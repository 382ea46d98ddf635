"""The published JSON Schemas of the field document types."""

from server.schemas._controller import DocumentTypeSchemas, SchemaController, SchemasPublic

__all__ = ["DocumentTypeSchemas", "SchemaController", "SchemasPublic"]
