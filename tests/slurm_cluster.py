"""A real one-node Slurm cluster on localhost, for the tests and bench/scale.py.

Debian's `slurmctld`, `slurmd`, `slurm-client` and `munge` packages (`.ci/run` installs them)
run as root with a `slurm.conf` written here: process tracking by process group, no task
plugin, no cgroups, no accounting, every daemon bound to 127.0.0.1 on free ports, and all state
(munge key and socket, spool, logs, pid files) inside one folder. Daemons are started with
explicit `-f CONF` and pid files and stopped by those pids; nothing outside the folder is
touched (a munge daemon of the system, if any, is left alone: ours has its own socket).

    cluster = LocalSlurm(tmp_path / "slurm")
    cluster.start()
    env = cluster.env()            # SLURM_CONF for sbatch/squeue/scancel
    ...
    cluster.stop()

`unavailable()` says why a cluster cannot run here (None when it can).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

COMMANDS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel")
# Job states after which a job will not run again (scontrol's JobState values).
FINISHED = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
        "DEADLINE",
        "PREEMPTED",
    }
)


def unavailable() -> str | None:
    """Why a local cluster cannot be started here, or None."""
    missing = [c for c in COMMANDS if shutil.which(c) is None]
    if missing:
        return (
            f"Slurm is not installed ({', '.join(missing)} not on PATH; "
            "apt-get install slurmctld slurmd slurm-client munge)"
        )
    if os.geteuid() != 0:
        return "a local Slurm cluster needs root (slurmd runs jobs as their user)"
    return None


# Ports are drawn below Linux's ephemeral range (32768-60999), so an outgoing connection of
# another process cannot take one between our check and the daemon's bind.
PORTS = range(20000, 32000)


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that 127.0.0.1 can bind now (held together while checked)."""
    rng = random.Random()
    held: list[socket.socket] = []
    try:
        while len(held) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", rng.choice(PORTS)))
            except OSError:
                s.close()
                continue
            held.append(s)
        return [int(s.getsockname()[1]) for s in held]
    finally:
        for s in held:
            s.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); it has exited all the same.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


class LocalSlurm:
    """A one-node cluster (this machine, `cpus` CPUs) whose files all live under `root`."""

    def __init__(self, root: Path, cpus: int | None = None, memory_mb: int = 2000) -> None:
        self.root = Path(root)
        self.cpus = cpus or os.cpu_count() or 1
        self.memory_mb = memory_mb
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.pid_files = {
            "slurmd": self.root / "slurmd.pid",
            "slurmctld": self.root / "slurmctld.pid",
            "munged": self.root / "munge" / "munged.pid",
        }
        self.started: list[str] = []

    # -- files ------------------------------------------------------------------------------
    def write_config(self) -> None:
        r = self.root
        for sub in ("state", "spool", "log", "munge"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        (r / "munge").chmod(0o700)
        (r / "spool" / self.host).mkdir(exist_ok=True)
        key = r / "munge" / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        ctld_port, slurmd_port = free_ports(2)
        lines = {
            "ClusterName": "zsartest",
            "SlurmctldHost": f"{self.host}(127.0.0.1)",
            "SlurmctldPort": str(ctld_port),
            "SlurmdPort": str(slurmd_port),
            "SlurmUser": "root",
            "SlurmdUser": "root",
            "AuthType": "auth/munge",
            "CredType": "cred/munge",
            "AuthInfo": f"socket={self.munge_socket}",
            # Bind to the configured address (127.0.0.1), not to every interface.
            "CommunicationParameters": "NoInAddrAny,NoCtldInAddrAny",
            "StateSaveLocation": str(r / "state"),
            "SlurmdSpoolDir": str(r / "spool" / "%n"),
            "SlurmctldPidFile": str(self.pid_files["slurmctld"]),
            "SlurmdPidFile": str(self.pid_files["slurmd"]),
            "SlurmctldLogFile": str(r / "log" / "slurmctld.log"),
            "SlurmdLogFile": str(r / "log" / "slurmd.log"),
            "SlurmctldDebug": "info",
            "SlurmdDebug": "info",
            "ProctrackType": "proctrack/pgid",
            "TaskPlugin": "task/none",
            "JobAcctGatherType": "jobacct_gather/none",
            "AccountingStorageType": "accounting_storage/none",
            "JobCompType": "jobcomp/none",
            "MpiDefault": "none",
            "SwitchType": "switch/none",
            "SchedulerType": "sched/backfill",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_CPU",
            "ReturnToService": "2",
            "MailProg": "/bin/true",
            # Finished jobs stay visible to scontrol (there is no accounting database).
            "MinJobAge": "3600",
            "KillWait": "5",
            "InactiveLimit": "0",
        }
        text = "".join(f"{k}={v}\n" for k, v in lines.items())
        text += (
            f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} "
            f"RealMemory={self.memory_mb} State=UNKNOWN\n"
            f"PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP\n"
        )
        self.conf.write_text(text)

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        # Our jobs must not inherit the array variables of an enclosing Slurm job.
        for name in list(env):
            if name.startswith("SLURM_") and name != "SLURM_CONF":
                del env[name]
        return env

    # -- daemons ----------------------------------------------------------------------------
    def _daemon(self, name: str, argv: list[str], timeout: float = 30) -> None:
        """Run a daemon that forks into the background; wait for its pid file. Its output goes
        to a file, not a pipe: a daemon that kept the pipe open would block the wait."""
        pid_file = self.pid_files[name]
        pid_file.unlink(missing_ok=True)
        self.started.append(name)  # stop() tries its pid file whatever happens next
        log = self.root / "log" / f"{name}.start"
        with open(log, "w") as out:
            done = subprocess.run(
                argv, env=self.env(), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                timeout=timeout,
            )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{name} did not start (exit {done.returncode}): {log.read_text()}")
        deadline = time.monotonic() + timeout
        while not pid_file.exists() or not pid_file.read_text().strip():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name}: no pid file {pid_file} after {timeout:.0f} s\n{self.logs()}"
                )
            time.sleep(0.1)

    def start(self, timeout: float = 90, attempts: int = 2) -> None:
        """Start munged, slurmctld and slurmd; return once the node accepts jobs. A start that
        fails (e.g. a port taken meanwhile) is stopped and retried once on other ports."""
        for attempt in range(attempts):
            try:
                self._start(timeout)
                return
            except (RuntimeError, subprocess.TimeoutExpired):
                self.stop()
                if attempt == attempts - 1:
                    raise

    def _start(self, timeout: float) -> None:
        self.write_config()
        munge = self.root / "munge"
        self._daemon(
            "munged",
            [
                "munged",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={munge / 'munge.key'}",
                f"--pid-file={self.pid_files['munged']}",
                f"--log-file={munge / 'munged.log'}",
                f"--seed-file={munge / 'munged.seed'}",
            ],
        )
        self._daemon("slurmctld", ["slurmctld", "-f", str(self.conf)])
        self._daemon("slurmd", ["slurmd", "-f", str(self.conf)])
        deadline = time.monotonic() + timeout
        while True:
            state = self.node_state()
            if state.startswith("IDLE") or state.startswith("MIXED"):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"node state {state!r} after {timeout:.0f} s\n{self.logs()}")
            time.sleep(0.5)

    def node_state(self) -> str:
        done = self.run(["scontrol", "show", "node", self.host, "-o"], check=False)
        found = re.search(r"\bState=(\S+)", done.stdout)
        return found.group(1) if found else ""

    def stop(self) -> None:
        """Cancel our jobs, then stop the daemons by pid (slurmd, slurmctld, munged)."""
        if "slurmctld" in self.started:
            with contextlib.suppress(Exception):
                self.run(["scancel", "--full", "--user", "root"], check=False)
                self.wait_idle(timeout=30)
        for name in ("slurmd", "slurmctld", "munged"):
            if name not in self.started:
                continue
            pid_file = self.pid_files[name]
            with contextlib.suppress(OSError, ValueError):
                pid = int(pid_file.read_text().split()[0])
                # Only our daemon: a stale pid file's number may belong to another process now.
                if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                    self._kill(pid)
            self.started.remove(name)

    @staticmethod
    def _kill(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def logs(self) -> str:
        out = []
        for log in sorted((self.root / "log").glob("*.log")):
            out.append(f"== {log.name}\n" + "\n".join(log.read_text().splitlines()[-20:]))
        return "\n".join(out)

    # -- jobs -------------------------------------------------------------------------------
    def run(
        self,
        argv: list[str],
        env: Mapping[str, str] | None = None,
        check: bool = True,
        cwd: Path | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            argv,
            env=self.env(env),
            capture_output=True,
            text=True,
            check=False,
            cwd=cwd,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
            )
        return done

    def job_states(self, job_ids: Iterable[str]) -> dict[str, str]:
        """'JOB' or 'JOB_TASK' → JobState, for every task of the given jobs (arrays expanded)."""
        states: dict[str, str] = {}
        for job in job_ids:
            done = self.run(["scontrol", "show", "job", "-o", str(job)], check=False)
            for line in done.stdout.splitlines():
                fields = dict(re.findall(r"(\w+)=(\S*)", line))
                if "JobState" not in fields:
                    continue
                name = fields.get("JobId", str(job))
                if fields.get("ArrayTaskId") and fields.get("ArrayJobId"):
                    name = f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"
                states[name] = fields["JobState"]
        return states

    def wait(self, job_ids: Iterable[str], timeout: float = 600) -> dict[str, str]:
        """Wait until every task of the jobs has finished; their final states."""
        ids = list(job_ids)
        deadline = time.monotonic() + timeout
        while True:
            states = self.job_states(ids)
            if states and all(s in FINISHED for s in states.values()):
                return states
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs not finished after {timeout:.0f} s: {states}")
            time.sleep(0.5)

    def wait_idle(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.run(["squeue", "-h", "-o", "%i"], check=False)
            if not done.stdout.strip():
                return
            time.sleep(0.5)
