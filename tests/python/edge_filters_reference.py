#!/usr/bin/env python3
"""Independent reference implementations for the EdgeCore filters (Tests/EdgeCoreTests).

Reads one JSON request on stdin and writes the reference output as JSON on stdout.
Kalman filters use filterpy (KalmanFilter predict/update) and pykalman (KalmanFilter.filter with
masked observations); the smoothers use numpy. Requests:

  {"mode": "kalman1d_filterpy", "q": .., "r": .., "p0": .., "ts": [..], "z": [..]}
  {"mode": "kalman1d_pykalman", "q_step": .., "r": .., "p0": .., "steps": N, "index": [..], "z": [..]}
  {"mode": "gps_filterpy", "r": .., "accel": .., "vel": .., "gate": .., "max_rejects": .., "reset_after": ..,
   "ts": [..], "lat": [..], "lon": [..]}
  {"mode": "smoothers_numpy", "alpha": .., "median_window": .., "hampel_window": .., "hampel_sigmas": .., "z": [..]}
"""
import json
import math
import sys

import numpy as np
from filterpy.kalman import KalmanFilter as FKF
from pykalman import KalmanFilter as PKF

EARTH_RADIUS = 6371008.8


def kalman1d_filterpy(req):
    kf = FKF(dim_x=1, dim_z=1)
    kf.F = np.array([[1.0]])
    kf.H = np.array([[1.0]])
    kf.R = np.array([[req["r"]]])
    out = []
    last = None
    for t, z in zip(req["ts"], req["z"]):
        if last is None:
            kf.x = np.array([[z]])
            kf.P = np.array([[req["p0"]]])
        else:
            kf.Q = np.array([[req["q"] * (t - last)]])
            kf.predict()
        last = t
        kf.update(np.array([[z]]))
        out.append(float(kf.x[0, 0]))
    return out


def kalman1d_pykalman(req):
    steps = req["steps"]
    obs = np.ma.masked_all((steps, 1))
    for i, z in zip(req["index"], req["z"]):
        obs[i, 0] = z
    kf = PKF(
        transition_matrices=[[1.0]],
        observation_matrices=[[1.0]],
        transition_covariance=[[req["q_step"]]],
        observation_covariance=[[req["r"]]],
        initial_state_mean=[req["z"][0]],
        initial_state_covariance=[[req["p0"]]],
    )
    means, _ = kf.filter(obs)
    return [float(means[i, 0]) for i in req["index"]]


def gps_filterpy(req):
    r, accel, vel = req["r"], req["accel"], req["vel"]
    gate, max_rejects, reset_after = req["gate"], req["max_rejects"], req["reset_after"]
    k = EARTH_RADIUS * math.pi / 180
    kf = None
    origin = (0.0, 0.0)
    cos_lat0 = 1.0
    last = None
    rejects = 0
    lats, lons, outcomes = [], [], []

    def restart(t, lat, lon):
        nonlocal kf, origin, cos_lat0, last, rejects
        kf = FKF(dim_x=4, dim_z=2)
        kf.x = np.zeros((4, 1))
        kf.P = np.diag([r, r, vel, vel]).astype(float)
        kf.H = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
        kf.R = np.eye(2) * r
        origin = (lat, lon)
        cos_lat0 = math.cos(lat * math.pi / 180)
        last = t
        rejects = 0

    for t, lat, lon in zip(req["ts"], req["lat"], req["lon"]):
        if kf is None or t - last > reset_after:
            restart(t, lat, lon)
            lats.append(lat), lons.append(lon), outcomes.append("reset")
            continue
        dt = t - last
        last = t
        kf.F = np.array([[1.0, 0, dt, 0], [0, 1.0, 0, dt], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
        a, b, c = dt * dt * dt * dt / 4 * accel, dt * dt * dt / 2 * accel, dt * dt * accel
        kf.Q = np.array([[a, 0, b, 0], [0, a, 0, b], [b, 0, c, 0], [0, b, 0, c]])
        kf.predict()
        z = np.array([[(lon - origin[1]) * k * cos_lat0], [(lat - origin[0]) * k]])
        y = z - kf.H @ kf.x
        s = kf.H @ kf.P @ kf.H.T + kf.R
        d2 = float((y.T @ np.linalg.inv(s) @ y)[0, 0])
        if not d2 <= gate:
            rejects += 1
            if rejects >= max_rejects:
                restart(t, lat, lon)
                lats.append(lat), lons.append(lon), outcomes.append("reset")
                continue
            outcome = "rejected"
        else:
            rejects = 0
            kf.update(z)
            outcome = "accepted"
        e, n = float(kf.x[0, 0]), float(kf.x[1, 0])
        lats.append(origin[0] + n / k)
        lons.append(origin[1] + e / (k * cos_lat0))
        outcomes.append(outcome)
    return {"lat": lats, "lon": lons, "outcome": outcomes}


def smoothers_numpy(req):
    z = np.array(req["z"], dtype=float)
    alpha = req["alpha"]
    ema = []
    y = None
    for v in z:
        y = v if y is None else y + alpha * (v - y)
        ema.append(float(y))
    mw = req["median_window"]
    median = [float(np.median(z[max(0, i - mw + 1): i + 1])) for i in range(len(z))]
    hw, hs = req["hampel_window"], req["hampel_sigmas"]
    hampel = []
    for i, v in enumerate(z):
        if i + 1 < hw:
            hampel.append(float(v))
            continue
        w = z[i - hw + 1: i + 1]
        m = np.median(w)
        mad = np.median(np.abs(w - m))
        hampel.append(float(m) if abs(v - m) > hs * 1.4826 * mad else float(v))
    return {"ema": ema, "median": median, "hampel": hampel}


def main():
    req = json.load(sys.stdin)
    mode = req.get("mode")
    handlers = {
        "kalman1d_filterpy": kalman1d_filterpy,
        "kalman1d_pykalman": kalman1d_pykalman,
        "gps_filterpy": gps_filterpy,
        "smoothers_numpy": smoothers_numpy,
    }
    if mode not in handlers:
        sys.exit(f"edge_filters_reference.py: unknown mode {mode!r}")
    json.dump(handlers[mode](req), sys.stdout)


if __name__ == "__main__":
    main()
