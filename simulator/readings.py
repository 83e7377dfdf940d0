"""Plausible readings of an Acuvim three-phase meter, as a gateway reads them over Modbus.

About 50 registers per reading: phase and line voltages, currents, active/reactive/apparent
power per phase and in total, power factors, frequency, energy counters that only grow,
harmonics, demand, unbalance, temperature and a meter status. Now and then the gateway fails to
read one register (null), and a meter that loses Modbus answers nothing at all for a while.
All randomness comes from the device's own seeded generator, so a run repeats.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

ReadingValue = float | int | str | None

NOMINAL_V = 230.0
NOMINAL_HZ = 50.0
# Registers a gateway sometimes fails to read (a Modbus CRC error on one request): never the
# voltages or the counters, which live in the block read first and retried by the firmware.
FLAKY_REGISTERS = ("thd_v1", "thd_v2", "thd_v3", "thd_i1", "thd_i2", "thd_i3",
                   "dmd_p", "dmd_q", "dmd_s", "unbal_v", "unbal_i", "temp")
REGISTERS = (
    "v1", "v2", "v3", "v12", "v23", "v31", "vavg", "vllavg",
    "i1", "i2", "i3", "in", "iavg",
    "p1", "p2", "p3", "p", "q1", "q2", "q3", "q", "s1", "s2", "s3", "s",
    "pf1", "pf2", "pf3", "pf", "freq",
    "ep_imp", "ep_exp", "eq_imp", "eq_exp", "es",
    *FLAKY_REGISTERS, "run_hours", "load_type", "meter_status",
)


@dataclass
class MeterEvents:
    """How often unusual things happen, per reading."""

    voltage_event_chance: float = 0.01   # a swell or a sag on one phase
    overcurrent_chance: float = 0.005    # a motor start or a fault on one phase
    null_register_chance: float = 0.05   # one flaky register read as null
    modbus_loss_chance: float = 0.0      # the meter stops answering (RS-485 cable, power)
    event_length: tuple[int, int] = (2, 5)  # readings an event lasts


class MeterSimulator:
    """One meter's state; `read(now_s)` integrates energy since the previous read."""

    def __init__(self, rng: random.Random, *, has_pv: bool = False,
                 events: MeterEvents | None = None) -> None:
        self.rng = rng
        self.events = events or MeterEvents()
        self.has_pv = has_pv
        self.phase_offset_v = [rng.uniform(-3.0, 3.0) for _ in range(3)]
        self.base_load_a = [rng.uniform(4.0, 35.0) for _ in range(3)]
        self.load_factor = 1.0
        self.pf_base = [rng.uniform(0.86, 0.99) for _ in range(3)]
        self.pv_peak_kw = rng.uniform(3.0, 15.0) if has_pv else 0.0
        self.ep_imp_kwh = rng.uniform(1_000.0, 250_000.0)
        self.ep_exp_kwh = rng.uniform(100.0, 20_000.0) if has_pv else 0.0
        self.eq_imp_kvarh = self.ep_imp_kwh * rng.uniform(0.1, 0.3)
        self.eq_exp_kvarh = rng.uniform(0.0, 50.0)
        self.es_kvah = self.ep_imp_kwh * 1.05
        self.run_hours = rng.uniform(1_000.0, 40_000.0)
        self.last_read_s: float | None = None
        self.voltage_event: tuple[int, float, int] | None = None  # phase, delta V, readings left
        self.current_event: tuple[int, float, int] | None = None  # phase, amps, readings left
        self.modbus_lost_readings = 0

    @property
    def modbus_ok(self) -> bool:
        return self.modbus_lost_readings == 0

    def read(self, now_s: float | None = None) -> dict[str, ReadingValue]:
        """One reading at `now_s` (epoch seconds): the registers, or nulls when Modbus is lost."""
        now_s = time.time() if now_s is None else now_s
        self._advance_events()
        volts, amps, pfs = self._phases()
        powers = self._powers(volts, amps, pfs, now_s)
        self._integrate(powers["p"], powers["q"], powers["s"], now_s)
        if not self.modbus_ok:
            data: dict[str, ReadingValue] = dict.fromkeys(REGISTERS)
            data["meter_status"] = "modbus_error"
            return data
        data = {**self._voltage_registers(volts), **self._current_registers(amps), **powers}
        data.update(self._quality_registers(volts, amps))
        data["run_hours"] = round(self.run_hours, 1)
        data["load_type"] = "inductive" if powers["q"] >= 0 else "capacitive"  # type: ignore[operator]
        data["meter_status"] = "ok"
        if self.rng.random() < self.events.null_register_chance:
            data[self.rng.choice(FLAKY_REGISTERS)] = None
        return data

    # -- state ---------------------------------------------------------------------------------
    def _advance_events(self) -> None:
        ev, rng = self.events, self.rng
        if self.voltage_event is not None:
            phase, delta, left = self.voltage_event
            self.voltage_event = (phase, delta, left - 1) if left > 1 else None
        elif rng.random() < ev.voltage_event_chance:
            delta = rng.uniform(26.0, 34.0) * rng.choice((1, -1))
            self.voltage_event = (rng.randrange(3), delta, rng.randint(*ev.event_length))
        if self.current_event is not None:
            phase, amps, left = self.current_event
            self.current_event = (phase, amps, left - 1) if left > 1 else None
        elif rng.random() < ev.overcurrent_chance:
            self.current_event = (rng.randrange(3), rng.uniform(85.0, 110.0),
                                  rng.randint(*ev.event_length))
        if self.modbus_lost_readings > 0:
            self.modbus_lost_readings -= 1
        elif rng.random() < ev.modbus_loss_chance:
            self.modbus_lost_readings = rng.randint(3, 8)
        # The load wanders slowly, like a building's does.
        self.load_factor = min(1.6, max(0.3, self.load_factor + rng.gauss(0.0, 0.04)))

    def _phases(self) -> tuple[list[float], list[float], list[float]]:
        rng = self.rng
        volts = [NOMINAL_V + off + rng.gauss(0.0, 0.8) for off in self.phase_offset_v]
        amps = [max(0.0, base * self.load_factor * rng.uniform(0.95, 1.05))
                for base in self.base_load_a]
        pfs = [min(0.999, max(0.5, pf + rng.gauss(0.0, 0.01))) for pf in self.pf_base]
        if self.voltage_event is not None:
            phase, delta, _ = self.voltage_event
            volts[phase] += delta
        if self.current_event is not None:
            phase, peak_a, _ = self.current_event
            amps[phase] = peak_a
        return volts, amps, pfs

    def _pv_kw(self, now_s: float) -> float:
        if not self.has_pv:
            return 0.0
        hour = (now_s % 86_400) / 3_600
        sun = math.sin(math.pi * (hour - 6.0) / 12.0)
        return max(0.0, sun) * self.pv_peak_kw * self.rng.uniform(0.8, 1.0)

    def _powers(self, volts: list[float], amps: list[float], pfs: list[float],
                now_s: float) -> dict[str, ReadingValue]:
        s_ph = [v * i / 1000.0 for v, i in zip(volts, amps, strict=True)]
        p_ph = [s * pf for s, pf in zip(s_ph, pfs, strict=True)]
        q_ph = [s * math.sqrt(max(0.0, 1.0 - pf * pf)) for s, pf in zip(s_ph, pfs, strict=True)]
        pv_share_kw = self._pv_kw(now_s) / 3.0
        if pv_share_kw:
            # PV feeds in: the meter sees the net flow (a net export shows as a negative p).
            p_ph = [p - pv_share_kw for p in p_ph]
            s_ph = [math.hypot(p, q) for p, q in zip(p_ph, q_ph, strict=True)]
            pfs = [abs(p) / s if s else 1.0 for p, s in zip(p_ph, s_ph, strict=True)]
        p, q, s = sum(p_ph), sum(q_ph), sum(s_ph)
        out: dict[str, ReadingValue] = {}
        for n in range(3):
            out[f"p{n + 1}"] = round(p_ph[n], 3)
            out[f"q{n + 1}"] = round(q_ph[n], 3)
            out[f"s{n + 1}"] = round(s_ph[n], 3)
            out[f"pf{n + 1}"] = round(pfs[n], 3)
        out.update(p=round(p, 3), q=round(q, 3), s=round(s, 3),
                   pf=round(abs(p) / s, 3) if s > 0 else 1.0,
                   freq=round(NOMINAL_HZ + self.rng.gauss(0.0, 0.015), 2))
        return out

    def _integrate(self, p_kw: ReadingValue, q_kvar: ReadingValue, s_kva: ReadingValue,
                   now_s: float) -> None:
        elapsed_h = 0.0 if self.last_read_s is None else max(0.0, now_s - self.last_read_s) / 3600
        self.last_read_s = now_s
        p, q, s = float(p_kw or 0.0), float(q_kvar or 0.0), float(s_kva or 0.0)
        self.ep_imp_kwh += max(p, 0.0) * elapsed_h
        self.ep_exp_kwh += max(-p, 0.0) * elapsed_h
        self.eq_imp_kvarh += max(q, 0.0) * elapsed_h
        self.eq_exp_kvarh += max(-q, 0.0) * elapsed_h
        self.es_kvah += s * elapsed_h
        self.run_hours += elapsed_h

    # -- registers -----------------------------------------------------------------------------
    @staticmethod
    def _voltage_registers(volts: list[float]) -> dict[str, ReadingValue]:
        line = [abs(complex(volts[a]) - complex(volts[b]) * complex(-0.5, math.sqrt(3) / 2))
                for a, b in ((0, 1), (1, 2), (2, 0))]
        return {
            "v1": round(volts[0], 1), "v2": round(volts[1], 1), "v3": round(volts[2], 1),
            "v12": round(line[0], 1), "v23": round(line[1], 1), "v31": round(line[2], 1),
            "vavg": round(sum(volts) / 3, 1), "vllavg": round(sum(line) / 3, 1),
        }

    @staticmethod
    def _current_registers(amps: list[float]) -> dict[str, ReadingValue]:
        # Neutral current of unbalanced phases 120 degrees apart.
        rot = complex(-0.5, math.sqrt(3) / 2)
        neutral = abs(amps[0] + amps[1] * rot + amps[2] * rot * rot)
        return {"i1": round(amps[0], 2), "i2": round(amps[1], 2), "i3": round(amps[2], 2),
                "in": round(neutral, 2), "iavg": round(sum(amps) / 3, 2)}

    def _quality_registers(self, volts: list[float], amps: list[float]) -> dict[str, ReadingValue]:
        rng = self.rng
        v_avg, i_avg = sum(volts) / 3, sum(amps) / 3
        out: dict[str, ReadingValue] = {
            "ep_imp": round(self.ep_imp_kwh, 1), "ep_exp": round(self.ep_exp_kwh, 1),
            "eq_imp": round(self.eq_imp_kvarh, 1), "eq_exp": round(self.eq_exp_kvarh, 1),
            "es": round(self.es_kvah, 1),
            "dmd_p": round(sum(self.base_load_a) * 0.22 * self.load_factor, 2),
            "dmd_q": round(sum(self.base_load_a) * 0.05 * self.load_factor, 2),
            "dmd_s": round(sum(self.base_load_a) * 0.23 * self.load_factor, 2),
            "unbal_v": round(max(abs(v - v_avg) for v in volts) / v_avg * 100, 2),
            "unbal_i": round(max(abs(i - i_avg) for i in amps) / i_avg * 100, 2) if i_avg else 0.0,
            "temp": round(rng.uniform(28.0, 42.0), 1),
        }
        for n in range(3):
            out[f"thd_v{n + 1}"] = round(rng.uniform(1.0, 4.5), 2)
            out[f"thd_i{n + 1}"] = round(rng.uniform(3.0, 25.0), 2)
        return out
