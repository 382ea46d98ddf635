"""Metres on the ground: a local tangent-plane projection for the district and geodesic distance."""

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["LocalProjection", "geodesic_distance_m"]

_WGS84_A = 6378137.0
_WGS84_F = 1 / 298.257223563
_WGS84_E2 = _WGS84_F * (2 - _WGS84_F)

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LocalProjection:
    """East/north metres from an origin, using the WGS-84 radii of curvature at the origin.

    Over a subdistrict (a few km) the error is far below GNSS accuracy (millimetres per km).
    """

    lon0: float
    lat0: float

    @property
    def _scales(self) -> tuple[float, float]:
        phi = math.radians(self.lat0)
        w = math.sqrt(1 - _WGS84_E2 * math.sin(phi) ** 2)
        prime_vertical = _WGS84_A / w
        meridional = _WGS84_A * (1 - _WGS84_E2) / w**3
        return math.radians(1) * prime_vertical * math.cos(phi), math.radians(1) * meridional

    def forward(self, lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
        sx, sy = self._scales
        return (np.asarray(lon, dtype=np.float64) - self.lon0) * sx, (
            np.asarray(lat, dtype=np.float64) - self.lat0
        ) * sy

    def forward_point(self, lon: float, lat: float) -> tuple[float, float]:
        sx, sy = self._scales
        return (lon - self.lon0) * sx, (lat - self.lat0) * sy

    def inverse_point(self, x: float, y: float) -> tuple[float, float]:
        sx, sy = self._scales
        return self.lon0 + x / sx, self.lat0 + y / sy


def geodesic_distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Distance on the WGS-84 ellipsoid (Lambert's formula; within a metre or so up to ~1000 km)."""
    if lon1 == lon2 and lat1 == lat2:
        return 0.0
    beta1 = math.atan((1 - _WGS84_F) * math.tan(math.radians(lat1)))
    beta2 = math.atan((1 - _WGS84_F) * math.tan(math.radians(lat2)))
    dlon = math.radians(lon2 - lon1)
    # central angle on the auxiliary sphere (haversine, stable for small distances)
    h = math.sin((beta2 - beta1) / 2) ** 2 + math.cos(beta1) * math.cos(beta2) * math.sin(dlon / 2) ** 2
    sigma = 2 * math.asin(min(1.0, math.sqrt(h)))
    if sigma == 0:
        return 0.0
    p = (beta1 + beta2) / 2
    q = (beta2 - beta1) / 2
    x = (sigma - math.sin(sigma)) * (math.sin(p) * math.cos(q)) ** 2 / math.cos(sigma / 2) ** 2
    y = (sigma + math.sin(sigma)) * (math.cos(p) * math.sin(q)) ** 2 / math.sin(sigma / 2) ** 2
    return _WGS84_A * (sigma - _WGS84_F / 2 * (x + y))
