"""Jacketed CSTR physics: an exothermic first-order reaction A -> B, vectorized over many units.

The model is the textbook jacketed CSTR (Seborg et al., *Process Dynamics and Control*, the
exothermic CSTR example; Bequette, *Process Control*, ch. 2), with a jacket energy balance
added and the volumes scaled to a 2 m3 vessel with a 10 min residence time. Per unit:

    dCA/dt = q/V (CAf - CA) - r                      r = kmult k0 exp(-E/T) CA   [kmol/m3/s]
    dCB/dt = -q/V CB + r - r2                        r2 = dmult k02 exp(-E2/T) CB
    dT/dt  = q/V (Tf - T) + (dH r + dH2 r2)/(rho cp) - UA (T - Tj) / (V rho cp)
    dTj/dt = Fc/Vj (Tcin - Tj) + UA (T - Tj) / (Vj rho cp)
    dh/dt  = (q - Cv sqrt(h)) / A                    V = A h (self-regulating outflow)

The second reaction is the decomposition of the product B, with a much higher activation
energy; it is absent (dmult = 0) until a contamination fault switches it on, and then its heat
grows by about 10 % per kelvin: the classic thermal-runaway mechanism (the controller holds the
first few kelvin, saturates, and the temperature then accelerates until B is used up).

A PI controller (reverse acting, back-calculation anti-windup, valve limits 0..1) moves the
coolant valve to hold T at its setpoint; the valve follows its command with a first-order lag,
or not at all when a fault makes it stuck or sticky. Pressure rises with temperature (pad gas
plus the liquid's vapour pressure, Clausius-Clapeyron).

Nominal operating point: T = 350 K, CA = 0.75 kmol/m3 (75 % conversion, the stable upper
branch: the open-loop Jacobian's eigenvalues all have negative real parts), jacket 339 K,
level 1 m, about 3 bar, coolant about 25 of 50 m3/h, so the loop has headroom both ways.

Integration: classical RK4 with a fixed step (the scenario's ``step_s``, 5 s by default; the
fastest open-loop time constant is about 30 s), split into more substeps, chosen from the
stiffest unit so still deterministic, only when a unit heats up so far that the reaction rate
would make RK4 unstable. The controller acts once per step, as a DCS scan would. The same
functions run on arrays [U] (numpy, many units at once) or on Python floats (one unit at a
time, faster for a handful of units): see :class:`Backend`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
# A float (one unit, scalar path) or an array [U] (many units, vector path): the dynamics accept both.
Num = Any

# The eight measured signals of a reactor unit, in publication order (a shared fact with the service).
REACTOR_SENSORS: tuple[str, ...] = (
    "reactor_temp_K",
    "jacket_temp_K",
    "concentration_kmol_m3",
    "feed_flow_m3_h",
    "feed_temp_K",
    "coolant_flow_m3_h",
    "pressure_bar",
    "level_m",
)

# Measurement noise standard deviation per sensor, in the sensor's units (same order as REACTOR_SENSORS).
REACTOR_NOISE_SD: tuple[float, ...] = (0.15, 0.15, 0.01, 0.08, 0.15, 0.15, 0.01, 0.004)

# A typical change per sensor that an operator would notice, in the sensor's units: the scale
# for default sensor-fault magnitudes (a bias of 1x, a drift to 2x, spikes of 4x this).
REACTOR_FAULT_SCALE: tuple[float, ...] = (2.0, 2.0, 0.1, 1.0, 2.0, 2.0, 0.1, 0.05)

# Arrhenius argument is clipped to this range so a runaway cannot overflow exp().
_T_MIN_K, _T_MAX_K = 200.0, 550.0
# RK4 is stable for |lambda * dt| < 2.78 on real negative eigenvalues; keep a margin.
_RK4_SAFE_LAMBDA_DT = 1.5
_MAX_SUBSTEPS = 256


@dataclass(frozen=True)
class ReactorParams:
    """Physical and control parameters; each field is an array [U] (one value per unit), or a float for one unit."""

    area_m2: Num  # vessel cross-section
    outflow_cv: Num  # outflow = cv sqrt(level), m3/s per sqrt(m)
    k0_per_s: Num  # Arrhenius pre-exponential factor
    activation_K: Num  # E/R
    heat_kJ_kmol: Num  # -dH of reaction (exothermic, positive here)
    k02_per_s: Num  # decomposition B -> gases (only with a runaway fault)
    activation2_K: Num
    heat2_kJ_kmol: Num
    rho_cp_kJ_m3_K: Num  # volumetric heat capacity of contents and coolant
    ua_kW_K: Num  # jacket heat-transfer coefficient times area (clean)
    jacket_volume_m3: Num
    coolant_max_m3_s: Num  # coolant flow with the valve fully open
    feed_m3_s: Num  # nominal feed flow
    feed_conc_kmol_m3: Num  # nominal feed concentration CAf
    feed_temp_K: Num  # nominal feed temperature
    coolant_in_K: Num  # nominal coolant supply temperature
    setpoint_K: Num  # reactor temperature setpoint
    kc_per_K: Num  # PI gain, valve fraction per K of error
    ti_s: Num  # PI integral time
    valve_tau_s: Num  # valve actuator time constant
    pad_bar: Num  # pad-gas pressure at the setpoint temperature
    vapour_bar: Num  # vapour pressure at the setpoint temperature
    vapour_B_K: Num  # Clausius-Clapeyron slope (dHvap / R)

    @property
    def n_units(self) -> int:
        return int(self.area_m2.shape[0])

    def unit(self, i: int) -> ReactorParams:
        """Unit ``i``'s parameters as Python floats (for the scalar path)."""
        return ReactorParams(**{f.name: float(getattr(self, f.name)[i]) for f in fields(self)})


def nominal_params(n_units: int = 1) -> ReactorParams:
    """The nominal reactor, repeated for ``n_units`` units.

    Steady state at nominal: T = 350 K, CA = 1.5 kmol/m3 (50 % conversion), level 1 m, about
    3 bar, coolant about 45 % open. With these numbers the open-loop steady state is stable
    (checked in the tests by the Jacobian's eigenvalues) and the controller has roughly 2x
    cooling headroom, so only a fault can make it run away.
    """
    feed = 12.0 / 3600.0  # 12 m3/h
    values = {
        "area_m2": 2.0,
        "outflow_cv": feed / 1.0,  # level 1 m at nominal feed
        # k(350 K) = 3/600 s: k tau = 3 at the 600 s residence time -> 75 % conversion (upper branch)
        "k0_per_s": (3.0 / 600.0) * float(np.exp(8750.0 / 350.0)),
        "activation_K": 8750.0,
        "heat_kJ_kmol": 1.6e5,  # adiabatic rise 120 K
        # dmult = 1 -> 400 kW of decomposition heat at 350 K: more than the cooling headroom
        "k02_per_s": 4.44e-4 * float(np.exp(12000.0 / 350.0)),
        "activation2_K": 12000.0,
        "heat2_kJ_kmol": 2.0e5,
        "rho_cp_kJ_m3_K": 4000.0,
        "ua_kW_K": 50.0,
        "jacket_volume_m3": 0.6,
        "coolant_max_m3_s": 50.0 / 3600.0,
        "feed_m3_s": feed,
        "feed_conc_kmol_m3": 3.0,
        "feed_temp_K": 300.0,
        "coolant_in_K": 320.0,  # tempered-water jacket loop
        "setpoint_K": 350.0,
        "kc_per_K": 0.08,
        "ti_s": 240.0,
        "valve_tau_s": 8.0,
        "pad_bar": 2.0,
        "vapour_bar": 1.0,
        "vapour_B_K": 4000.0,
    }
    return ReactorParams(**{k: np.full(n_units, v, dtype=np.float64) for k, v in values.items()})


# Parameters that differ between real units (relative spread applies to these only).
_SPREAD_FIELDS = (
    "area_m2",
    "k0_per_s",
    "heat_kJ_kmol",
    "ua_kW_K",
    "jacket_volume_m3",
    "coolant_max_m3_s",
    "feed_m3_s",
    "feed_conc_kmol_m3",
    "pad_bar",
    "vapour_bar",
)


def sample_params(n_units: int, spread: float, rng: np.random.Generator) -> ReactorParams:
    """Nominal parameters with a relative Gaussian spread per unit (clipped at 3 sigma).

    The setpoint varies by a few kelvin too, so units do not all sit at the same temperature.
    """
    base = nominal_params(n_units)
    changes: dict[str, FloatArray] = {}
    for name in _SPREAD_FIELDS:
        factor = 1.0 + spread * np.clip(rng.standard_normal(n_units), -3.0, 3.0)
        changes[name] = getattr(base, name) * factor
    changes["setpoint_K"] = base.setpoint_K + 40.0 * spread * np.clip(rng.standard_normal(n_units), -3.0, 3.0)
    return replace(base, **changes)


@dataclass
class ReactorState:
    """Integrator and controller state, one value per unit: arrays [U] (or floats on the scalar path)."""

    conc: Num  # CA, kmol/m3
    product: Num  # CB, kmol/m3
    temp: Num  # T, K
    jacket: Num  # Tj, K
    level: Num  # h, m
    valve: Num  # actual valve position 0..1
    integral: Num  # PI integral term, valve fraction

    def copy(self) -> ReactorState:
        return ReactorState(**{f.name: np.copy(getattr(self, f.name)) for f in fields(self)})

    def unit(self, i: int) -> ReactorState:
        """Unit ``i`` as Python floats (for the scalar path)."""
        return ReactorState(**{f.name: float(getattr(self, f.name)[i]) for f in fields(self)})

    def set_unit(self, i: int, other: ReactorState) -> None:
        """Write a scalar unit state back into this vector state."""
        for f in fields(self):
            getattr(self, f.name)[i] = getattr(other, f.name)


@dataclass(frozen=True)
class StepInputs:
    """Inputs held constant over one integration step: arrays [U] (or floats on the scalar path)."""

    feed_m3_s: Num
    feed_conc: Num
    feed_temp: Num
    coolant_in: Num
    ua_mult: Num  # 1 = clean jacket, < 1 fouled
    k_mult: Num  # 1 = nominal catalyst activity
    decomp_mult: Num  # 0 = no decomposition; a runaway fault raises it
    valve_mode: Num  # VALVE_NORMAL, VALVE_STUCK or VALVE_STICKY (ints)
    stiction_band: Num  # valve fraction the command must move before a sticky valve slips


VALVE_NORMAL, VALVE_STUCK, VALVE_STICKY = 0, 1, 2


@dataclass(frozen=True)
class Backend:
    """The few elementwise functions the dynamics need, for numpy arrays or for Python floats.

    One formulation serves both paths: numpy for many units (one call per operation for all
    of them), plain floats for a handful of units, where a numpy call's fixed overhead
    (~0.3 us) would cost ten times the arithmetic.
    """

    exp: Callable[[Num], Num]
    sqrt: Callable[[Num], Num]
    maximum: Callable[[Num, Num], Num]
    minimum: Callable[[Num, Num], Num]
    where: Callable[[Num, Num, Num], Num]
    largest: Callable[[Num], float]


VECTOR = Backend(np.exp, np.sqrt, np.maximum, np.minimum, np.where, lambda a: float(np.max(a)))
SCALAR = Backend(math.exp, math.sqrt, max, min, lambda c, a, b: a if c else b, float)


def steady_state(p: ReactorParams) -> ReactorState:
    """The nominal steady state at the setpoint with nominal inputs (closed form, vector params).

    Solves the mass balance for CA at T = setpoint, the energy balance for the heat the jacket
    must remove, then the jacket balance for the coolant flow, whose valve fraction becomes the
    controller's integral term (so the loop starts in balance, bumplessly).
    """
    t = p.setpoint_K
    level = (p.feed_m3_s / p.outflow_cv) ** 2
    volume = p.area_m2 * level
    k = p.k0_per_s * np.exp(-p.activation_K / t)
    dilution = p.feed_m3_s / volume
    conc = p.feed_conc_kmol_m3 * dilution / (dilution + k)
    heat_kW = p.heat_kJ_kmol * volume * k * conc + p.feed_m3_s * p.rho_cp_kJ_m3_K * (p.feed_temp_K - t)
    jacket = t - heat_kW / p.ua_kW_K
    coolant = heat_kW / (p.rho_cp_kJ_m3_K * np.maximum(jacket - p.coolant_in_K, 1e-3))
    valve = np.clip(coolant / p.coolant_max_m3_s, 0.0, 1.0)
    return ReactorState(
        conc=conc,
        product=p.feed_conc_kmol_m3 - conc,
        temp=np.array(t, dtype=np.float64),
        jacket=jacket,
        level=level,
        valve=valve.copy(),
        integral=valve.copy(),
    )


State5 = tuple[Num, Num, Num, Num, Num]  # CA, CB, T, Tj, h


@dataclass(frozen=True)
class _Coefficients:
    """Everything the right-hand side needs that is constant over a step (computed once per step)."""

    ka: Num  # kmult k0
    kb: Num  # dmult k02
    neg_e1: Num
    neg_e2: Num
    q_over_a: Num  # feed / area: dilution = q_over_a / level
    cv_over_a: Num
    inv_area: Num
    caf: Num
    tf: Num
    tcin: Num
    h1: Num  # dH / (rho cp)
    h2: Num
    uac: Num  # UA / (rho cp): m3/s
    fc_over_vj: Num
    inv_vj: Num


def _coefficients(p: ReactorParams, inputs: StepInputs, coolant_m3_s: Num) -> _Coefficients:
    inv_rho_cp = 1.0 / p.rho_cp_kJ_m3_K
    return _Coefficients(
        ka=inputs.k_mult * p.k0_per_s,
        kb=inputs.decomp_mult * p.k02_per_s,
        neg_e1=-p.activation_K,
        neg_e2=-p.activation2_K,
        q_over_a=inputs.feed_m3_s / p.area_m2,
        cv_over_a=p.outflow_cv / p.area_m2,
        inv_area=1.0 / p.area_m2,
        caf=inputs.feed_conc,
        tf=inputs.feed_temp,
        tcin=inputs.coolant_in,
        h1=p.heat_kJ_kmol * inv_rho_cp,
        h2=p.heat2_kJ_kmol * inv_rho_cp,
        uac=p.ua_kW_K * inputs.ua_mult * inv_rho_cp,
        fc_over_vj=coolant_m3_s / p.jacket_volume_m3,
        inv_vj=1.0 / p.jacket_volume_m3,
    )


def derivatives(x: State5, c: _Coefficients, xp: Backend) -> State5:
    """Right-hand side of the ODE for x = (CA, CB, T, Tj, h), each [U] (or float)."""
    conc, product, temp, jacket, level = x
    inv_level = 1.0 / xp.maximum(level, 0.05)
    inv_t = 1.0 / xp.minimum(xp.maximum(temp, _T_MIN_K), _T_MAX_K)
    rate = c.ka * xp.exp(c.neg_e1 * inv_t) * xp.maximum(conc, 0.0)
    rate2 = c.kb * xp.exp(c.neg_e2 * inv_t) * xp.maximum(product, 0.0)
    dilution = c.q_over_a * inv_level
    transfer = c.uac * (temp - jacket)  # heat to the jacket / (rho cp): K m3/s
    return (
        dilution * (c.caf - conc) - rate,
        rate - dilution * product - rate2,
        dilution * (c.tf - temp) + c.h1 * rate + c.h2 * rate2 - transfer * c.inv_area * inv_level,
        c.fc_over_vj * (c.tcin - jacket) + transfer * c.inv_vj,
        c.q_over_a - c.cv_over_a * xp.sqrt(xp.maximum(level, 0.0)),
    )


def _stiffness(x: State5, c: _Coefficients, xp: Backend) -> float:
    """An upper estimate of the largest eigenvalue magnitude over all units (1/s).

    Reaction rates, flows, and the self-heating feedback d(heat)/dT, which is what grows in a runaway.
    """
    conc, product, temp, _, level = x
    t = xp.minimum(xp.maximum(temp, _T_MIN_K), _T_MAX_K)
    inv_t = 1.0 / t
    k1 = c.ka * xp.exp(c.neg_e1 * inv_t)
    k2 = c.kb * xp.exp(c.neg_e2 * inv_t)
    self_heating = -(c.h1 * k1 * conc * c.neg_e1 + c.h2 * k2 * product * c.neg_e2) * inv_t * inv_t
    jacket = (c.uac + c.fc_over_vj / c.inv_vj) * c.inv_vj
    return xp.largest(k1 + k2 + c.q_over_a / xp.maximum(level, 0.05) + xp.maximum(self_heating, 0.0) + jacket)


def control_step(p: ReactorParams, s: ReactorState, inputs: StepInputs, dt_s: float, xp: Backend) -> Num:
    """Run the PI controller and the valve for one step; updates ``s`` in place, returns coolant flow (m3/s).

    Back-calculation anti-windup: the integral is pulled towards the clipped output, so a
    saturated or stuck valve does not wind the integral up (tracking time = Ti / 2).
    """
    error = s.temp - p.setpoint_K  # reverse acting: too hot -> open the coolant valve
    unclipped = p.kc_per_K * error + s.integral
    command = xp.minimum(xp.maximum(unclipped, 0.0), 1.0)
    lag = 1.0 - xp.exp(-dt_s / p.valve_tau_s)
    moved = s.valve + (command - s.valve) * lag
    # A sticky valve holds until the command has moved past the dead band, then jumps (stick-slip).
    slip = abs(command - s.valve) > inputs.stiction_band
    new_valve = xp.where(inputs.valve_mode == VALVE_STICKY, xp.where(slip, command, s.valve), moved)
    new_valve = xp.where(inputs.valve_mode == VALVE_STUCK, s.valve, new_valve)
    s.integral = s.integral + dt_s * (p.kc_per_K * error / p.ti_s + 2.0 * (command - unclipped) / p.ti_s)
    s.valve = xp.minimum(xp.maximum(new_valve, 0.0), 1.0)
    return s.valve * p.coolant_max_m3_s


def integrate_step(p: ReactorParams, s: ReactorState, inputs: StepInputs, dt_s: float, xp: Backend = VECTOR) -> Num:
    """Advance ``s`` by ``dt_s`` (controller, then RK4 on the physics); returns the coolant flow held over the step.

    ``p``, ``s`` and ``inputs`` hold arrays [U] with ``xp=VECTOR`` or floats with ``xp=SCALAR``.
    """
    coolant = control_step(p, s, inputs, dt_s, xp)
    c = _coefficients(p, inputs, coolant)
    x: State5 = (s.conc, s.product, s.temp, s.jacket, s.level)
    n_sub = int(min(_MAX_SUBSTEPS, max(1.0, math.ceil(_stiffness(x, c, xp) * dt_s / _RK4_SAFE_LAMBDA_DT))))
    h = dt_s / n_sub
    for _ in range(n_sub):
        k1 = derivatives(x, c, xp)
        k2 = derivatives(_axpy(x, 0.5 * h, k1), c, xp)
        k3 = derivatives(_axpy(x, 0.5 * h, k2), c, xp)
        k4 = derivatives(_axpy(x, h, k3), c, xp)
        sixth = h / 6.0
        x = (
            x[0] + sixth * (k1[0] + 2.0 * (k2[0] + k3[0]) + k4[0]),
            x[1] + sixth * (k1[1] + 2.0 * (k2[1] + k3[1]) + k4[1]),
            x[2] + sixth * (k1[2] + 2.0 * (k2[2] + k3[2]) + k4[2]),
            x[3] + sixth * (k1[3] + 2.0 * (k2[3] + k3[3]) + k4[3]),
            x[4] + sixth * (k1[4] + 2.0 * (k2[4] + k3[4]) + k4[4]),
        )
    s.conc = xp.maximum(x[0], 0.0)
    s.product = xp.maximum(x[1], 0.0)
    s.temp, s.jacket = x[2], x[3]
    s.level = xp.maximum(x[4], 0.0)
    return coolant


def _axpy(x: State5, a: float, y: State5) -> State5:
    return (x[0] + a * y[0], x[1] + a * y[1], x[2] + a * y[2], x[3] + a * y[3], x[4] + a * y[4])


def pressure_bar(p: ReactorParams, temp: FloatArray) -> FloatArray:
    """Head-space pressure: pad gas (ideal gas at constant volume) plus the vapour pressure. temp: [..., U]."""
    t = np.clip(temp, _T_MIN_K, _T_MAX_K)
    pad = p.pad_bar * t / p.setpoint_K
    vapour = p.vapour_bar * np.exp(p.vapour_B_K * (1.0 / p.setpoint_K - 1.0 / t))
    out: FloatArray = pad + vapour
    return out
