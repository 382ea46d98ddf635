"""Coordinate datums used by phones in China.

WGS-84 is what GNSS reports and what we store. GCJ-02 is the obfuscated datum Amap (Gaode) and
Tencent maps return; BD-09 is Baidu's further offset of GCJ-02. The forward formulas are the
widely published ones; the GCJ-02 inverse has no closed form and is solved by fixed-point iteration.
Outside mainland China GCJ-02 equals WGS-84 by definition.
"""

import math
from collections.abc import Sequence
from enum import StrEnum

import numpy as np
import numpy.typing as npt

__all__ = [
    "Datum",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "gcj02_to_wgs84_many",
    "in_china",
    "to_wgs84",
    "to_wgs84_many",
    "wgs84_to_gcj02",
]

_A = 6378245.0  # Krasovsky 1940 semi-major axis, as the GCJ-02 formula uses it
_EE = 0.00669342162296594323  # its first eccentricity squared
_X_PI = math.pi * 3000.0 / 180.0
_INVERSE_TOLERANCE_DEG = 1e-9  # ~0.1 mm
_INVERSE_MAX_ITERATIONS = 30


class Datum(StrEnum):
    WGS84 = "wgs84"
    GCJ02 = "gcj02"
    BD09 = "bd09"


def in_china(lon: float, lat: float) -> bool:
    """The rough mainland box inside which GCJ-02 applies."""
    return 72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271


def _delta(lon: float, lat: float) -> tuple[float, float]:
    x = lon - 105.0
    y = lat - 35.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    dlat += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlat += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    dlat += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    dlon += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlon += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    dlon += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    rad_lat = lat / 180.0 * math.pi
    magic = 1 - _EE * math.sin(rad_lat) ** 2
    sqrt_magic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrt_magic) * math.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * math.cos(rad_lat) * math.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    if not in_china(lon, lat):
        return lon, lat
    dlon, dlat = _delta(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """Inverse of ``wgs84_to_gcj02`` by fixed-point iteration, to about 0.1 mm."""
    if not in_china(lon, lat):
        return lon, lat
    wlon, wlat = lon, lat
    for _ in range(_INVERSE_MAX_ITERATIONS):
        glon, glat = wgs84_to_gcj02(wlon, wlat)
        dlon, dlat = glon - lon, glat - lat
        wlon, wlat = wlon - dlon, wlat - dlat
        if abs(dlon) < _INVERSE_TOLERANCE_DEG and abs(dlat) < _INVERSE_TOLERANCE_DEG:
            break
    return wlon, wlat


FloatArray = npt.NDArray[np.float64]


def _delta_many(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``_delta`` on arrays (same formula, term by term)."""
    x = lon - 105.0
    y = lat - 35.0
    pi = math.pi
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    dlat += (20.0 * np.sin(6.0 * x * pi) + 20.0 * np.sin(2.0 * x * pi)) * 2.0 / 3.0
    dlat += (20.0 * np.sin(y * pi) + 40.0 * np.sin(y / 3.0 * pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * pi) + 320 * np.sin(y * pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    dlon += (20.0 * np.sin(6.0 * x * pi) + 20.0 * np.sin(2.0 * x * pi)) * 2.0 / 3.0
    dlon += (20.0 * np.sin(x * pi) + 40.0 * np.sin(x / 3.0 * pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * pi) + 300.0 * np.sin(x / 30.0 * pi)) * 2.0 / 3.0
    rad_lat = lat / 180.0 * pi
    magic = 1 - _EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrt_magic) * pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad_lat) * pi)
    return dlon, dlat


def gcj02_to_wgs84_many(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """``gcj02_to_wgs84`` for arrays of points: the same fixed-point iteration, each point stopping
    when it has converged (results agree with the scalar function to ~1e-12 degrees)."""
    glon, glat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    wlon, wlat = glon.copy(), glat.copy()
    todo = np.flatnonzero((glon >= 72.004) & (glon <= 137.8347) & (glat >= 0.8293) & (glat <= 55.8271))
    for _ in range(_INVERSE_MAX_ITERATIONS):
        if todo.size == 0:
            break
        dlon_f, dlat_f = _delta_many(wlon[todo], wlat[todo])
        dlon = wlon[todo] + dlon_f - glon[todo]
        dlat = wlat[todo] + dlat_f - glat[todo]
        wlon[todo] -= dlon
        wlat[todo] -= dlat
        todo = todo[(np.abs(dlon) >= _INVERSE_TOLERANCE_DEG) | (np.abs(dlat) >= _INVERSE_TOLERANCE_DEG)]
    return wlon, wlat


def gcj02_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    z = math.sqrt(lon * lon + lat * lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def bd09_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """Baidu's published inverse (good to ~10 cm), refined by fixed-point iteration on the forward."""
    x = lon - 0.0065
    y = lat - 0.006
    z = math.sqrt(x * x + y * y) - 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _X_PI)
    glon, glat = z * math.cos(theta), z * math.sin(theta)
    for _ in range(_INVERSE_MAX_ITERATIONS):
        blon, blat = gcj02_to_bd09(glon, glat)
        dlon, dlat = blon - lon, blat - lat
        glon, glat = glon - dlon, glat - dlat
        if abs(dlon) < _INVERSE_TOLERANCE_DEG and abs(dlat) < _INVERSE_TOLERANCE_DEG:
            break
    return glon, glat


def bd09_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def to_wgs84(lon: float, lat: float, datum: Datum | str) -> tuple[float, float]:
    """Convert a coordinate reported in ``datum`` to WGS-84."""
    match Datum(datum):
        case Datum.WGS84:
            return lon, lat
        case Datum.GCJ02:
            return gcj02_to_wgs84(lon, lat)
        case Datum.BD09:
            return bd09_to_wgs84(lon, lat)


def to_wgs84_many(
    lons: Sequence[float], lats: Sequence[float], datums: Sequence[Datum | str]
) -> tuple[list[float], list[float]]:
    """``to_wgs84`` for many points: the GCJ-02 ones (most phones) converted as one array."""
    out_lon, out_lat = [float(x) for x in lons], [float(y) for y in lats]
    kinds = [Datum(d) for d in datums]
    gcj = [i for i, kind in enumerate(kinds) if kind is Datum.GCJ02]
    if gcj:
        wlon, wlat = gcj02_to_wgs84_many([out_lon[i] for i in gcj], [out_lat[i] for i in gcj])
        for i, x, y in zip(gcj, wlon.tolist(), wlat.tolist(), strict=True):
            out_lon[i], out_lat[i] = x, y
    for i, kind in enumerate(kinds):
        if kind is Datum.BD09:
            out_lon[i], out_lat[i] = bd09_to_wgs84(out_lon[i], out_lat[i])
    return out_lon, out_lat
