"""Photo attachments: the content decides the type, not the name."""

__all__ = ["ALLOWED_PHOTO_TYPES", "sniff_image_type"]

ALLOWED_PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})


def sniff_image_type(data: bytes) -> str | None:
    """The image type by its magic bytes, or None when it is not a JPEG, PNG or WebP."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
