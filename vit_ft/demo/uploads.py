"""What the demo accepts as an image: any file PIL reads, of a sensible size, in any mode, converted to RGB."""

import warnings
from pathlib import Path
from typing import NamedTuple

from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from ..data.transforms import to_rgb

# Below this many pixels a side an image holds no shape to classify (the smallest built-in images, digits, are 8x8).
MIN_SIDE = 4
# The largest image decoded: a 40-megapixel RGB image takes 120 MB in memory, and a public demo should not let one
# upload take gigabytes. The model sees a few hundred pixels a side at most, so nothing is lost by asking to downscale.
MAX_PIXELS = 40_000_000
# PIL modes the note explains, since the picture the model sees is not the file as it was.
_SIXTEEN_BIT = "16-bit, scaled to 8 bits"
_CONVERSIONS = {
    "CMYK": "CMYK, converted to RGB",
    "I;16": _SIXTEEN_BIT,
    "I;16B": _SIXTEEN_BIT,
    "I;16L": _SIXTEEN_BIT,
    "I": "32-bit, scaled to 8 bits",
    "F": "floating point, scaled to 8 bits",
}


class ImageRefused(ValueError):
    """An upload the demo cannot answer for; the message names the file and says what to upload instead."""


class Upload(NamedTuple):
    image: PILImage.Image  # RGB
    conversion: str | None  # how the file's pixels became RGB, when that changed their values


def read_upload(path: str | Path, name: str | None = None) -> Upload:
    """
    The RGB image in the file at `path` (an upload, named `name` on the visitor's machine), with a note of any
    conversion that changed its values. An ImageRefused names the file when it is not an image PIL reads, or smaller
    than MIN_SIDE pixels a side, or larger than MAX_PIXELS: the size is read from the file's header, before its pixels
    are decoded.
    """
    name = name or Path(path).name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)  # MAX_PIXELS is checked below
            image = PILImage.open(path)
    except PILImage.DecompressionBombError as error:
        raise ImageRefused(
            f"{name} is too large to decode ({error}): downscale it below {MAX_PIXELS // 1_000_000} megapixels."
        ) from error
    except (UnidentifiedImageError, OSError) as error:
        raise ImageRefused(
            f"{name} is not an image file PIL can read: upload a PNG, JPEG, WebP, BMP, GIF or TIFF image."
        ) from error
    with image:
        width, height = image.size
        if min(width, height) < MIN_SIDE:
            raise ImageRefused(
                f"{name} is {width}x{height} pixels, too small to show anything: upload an image at "
                f"least {MIN_SIDE} pixels on each side."
            )
        if width * height > MAX_PIXELS:
            raise ImageRefused(
                f"{name} is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), more "
                f"than the demo's {MAX_PIXELS // 1_000_000}: downscale it first (the model sees a "
                "few hundred pixels a side at most)."
            )
        try:
            image.load()
        except OSError as error:  # a header that PIL reads over pixels it cannot: a truncated or damaged file
            raise ImageRefused(f"{name} is damaged ({error}): upload the image again, or another one.") from error
        return Upload(to_rgb(image), _CONVERSIONS.get(image.mode))
