"""A one-node SLURM cluster on this machine, all of its state in one folder: for trying ``hydra/launcher=slurm`` without a cluster.

    python scripts/single_node_slurm.py start /tmp/slurm     # prints `export SLURM_CONF=... PATH=...` to paste
    python scripts/single_node_slurm.py stop /tmp/slurm      # scontrol shutdown, then stops munged

Needs root and Debian's ``slurm-wlm`` and ``munge`` packages (``apt-get install slurm-wlm munge``; ~8 s).
No systemd, cgroups or accounting database: ``proctrack/linuxproc``, ``task/none``,
``accounting_storage/none``; munged runs as the ``munge`` user with its socket in the folder; the
controller and the node daemon listen on free ports. Without accounting ``sacct`` has nothing to
say, and submitit reads a job's state from ``sacct``: ``<folder>/bin/sacct`` answers from
``squeue`` instead (finished jobs stay listed for ``MinJobAge`` = 1 h), so put ``<folder>/bin``
first on ``PATH``. The test ``tests/runner/test_slurm.py`` runs a sweep on such a cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

#: the Debian packages that provide the daemons and the client commands.
PACKAGES = ("slurm-wlm", "munge")
COMMANDS = ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo", "munged", "mungekey", "runuser")

#: each daemon's pid file, relative to the cluster's folder (the order they are stopped in).
DAEMONS = {"slurmctld": "slurmctld.pid", "slurmd": "slurmd.pid", "munged": "munge/run/munged.pid"}

SACCT = """#!/bin/sh
# sacct stand-in for a cluster without accounting: answers `sacct -o JobID,State,NodeList --parsable2 -j ID ...`
# (what submitit asks) from squeue, which lists finished jobs for MinJobAge seconds.
ids=""
while [ $# -gt 0 ]; do
  case "$1" in
    -j) ids="$ids${ids:+,}$2"; shift 2 ;;
    *) shift ;;
  esac
done
echo "JobID|State|NodeList"
exec squeue --noheader --states=all ${ids:+--jobs="$ids"} --format="%i|%T|%N"
"""


def missing_commands() -> list[str]:
    """The SLURM and munge commands that are not installed."""
    return [name for name in COMMANDS if shutil.which(name) is None]


def free_ports(count: int) -> list[int]:
    """``count`` different TCP ports nobody listens on now."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]


def total_memory_mb() -> int:
    """The machine's memory in MB, from /proc/meminfo."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


@dataclass
class Cluster:
    """A running one-node cluster whose files are all under ``root``."""

    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """What a client needs: ``SLURM_CONF`` and the ``sacct`` stand-in first on ``PATH``."""
        return {"SLURM_CONF": str(self.conf), "PATH": f"{self.root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}

    def run(self, *command: str, timeout: float = 30) -> str:
        """A client command (``sinfo``, ``squeue``, ...) against this cluster; its stdout."""
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **self.env})
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}\n{self.logs()}")
        return done.stdout

    def logs(self, lines: int = 20) -> str:
        """The last lines of the daemons' logs (for error messages)."""
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "munge/log/munged.log"):
            path = self.root / name
            if path.is_file():
                parts.append(f"--- {path}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(parts)

    def daemons(self) -> list[str]:
        """The cluster's daemons still running (by their pid files)."""
        return [name for name, pid_file in DAEMONS.items() if _alive(self.root / pid_file, name)]

    def jobs(self) -> list[str]:
        """The jobs still pending, running or completing (their ids)."""
        return self.run("squeue", "--noheader", "--states=PENDING,RUNNING,COMPLETING,CONFIGURING", "--format=%i").split()

    def wait(self, timeout_s: float) -> bool:
        """Wait until no job is pending, running or completing; whether that happened within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while self.jobs():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    def stop(self, drain_s: float = 60) -> None:
        """Stop the cluster: let its jobs end (``scancel`` after ``drain_s``), ``scontrol shutdown``, then munged.

        A sweep returns once every job has written its result, a moment before the job's process exits:
        shutting down then would leave its step daemon behind. Step daemons still there after the
        shutdown (only those of this cluster: ``SLURM_CONF`` in their environment) are killed with their
        processes. Returns when every daemon is gone.
        """
        if _alive(self.root / DAEMONS["slurmctld"], "slurmctld"):
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                if not self.wait(drain_s):
                    self.run("scancel", "--full", *self.jobs())
                    self.wait(15)
            subprocess.run(["scontrol", "shutdown"], capture_output=True, timeout=60, env={**os.environ, **self.env})
        for name, pid_file in DAEMONS.items():
            _stop(self.root / pid_file, name)
        for pid in self.step_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def step_processes(self) -> list[int]:
        """This cluster's job-step daemons (``slurmstepd`` with this ``SLURM_CONF``) and every process under them."""
        parents: dict[int, int] = {}
        steps = []
        marker = f"SLURM_CONF={self.conf}".encode()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                pid = int(stat.parent.name)
                command, rest = stat.read_text().split(" (", 1)[1].rsplit(") ", 1)
                parents[pid] = int(rest.split()[1])
                if command == "slurmstepd" and rest[0] != "Z" and marker in (stat.parent / "environ").read_bytes().split(b"\0"):
                    steps.append(pid)
            except (OSError, ValueError, IndexError):
                continue
        found, frontier = set(steps), list(steps)
        while frontier:
            parent = frontier.pop()
            children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in found]
            found.update(children)
            frontier += children
        return sorted(found)


def _pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid_file: Path, name: str) -> bool:
    """Whether the process of ``pid_file`` runs and is ``name`` (not a later process given the same pid; a zombie is gone)."""
    pid = _pid(pid_file)
    if pid is None:
        return False
    try:
        command, state = Path(f"/proc/{pid}/stat").read_text().split(" (", 1)[1].rsplit(") ", 1)
    except (OSError, IndexError, ValueError):
        return False
    return command == name[:15] and not state.startswith("Z")


def _stop(pid_file: Path, name: str, wait_s: float = 15) -> None:
    """Wait for the daemon ``name`` of ``pid_file`` to exit: SIGTERM at once, SIGKILL after ``wait_s``."""
    pid = _pid(pid_file)
    deadline = time.monotonic() + wait_s
    with contextlib.suppress(ProcessLookupError):
        if _alive(pid_file, name):
            os.kill(pid, signal.SIGTERM)
        while _alive(pid_file, name):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.1)


def _directory(path: Path, mode: int, owner: str | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        user = pwd.getpwnam(owner)
        os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(mode)
    return path


def _start_munged(root: Path) -> Path:
    """munged as the ``munge`` user (it refuses to run as root), key and log private, socket world-reachable; the socket."""
    munge = _directory(root / "munge", 0o755, "munge")
    key_dir, log_dir, run_dir = (_directory(munge / name, mode, "munge") for name, mode in (("key", 0o700), ("log", 0o700), ("run", 0o755)))
    as_munge = ["runuser", "-u", "munge", "--"]
    key = key_dir / "munge.key"
    subprocess.run([*as_munge, "mungekey", "--create", f"--keyfile={key}"], check=True, capture_output=True, timeout=30)
    sock = run_dir / "munge.socket"
    subprocess.run([*as_munge, "munged", f"--socket={sock}", f"--key-file={key}", f"--log-file={log_dir / 'munged.log'}",
                    f"--pid-file={run_dir / 'munged.pid'}", f"--seed-file={key_dir / 'munged.seed'}"], check=True, capture_output=True, timeout=30)
    return sock


def write_conf(root: Path, munge_socket: Path) -> Path:
    """slurm.conf for one node (this host, all its cores, 90 % of its memory) in one default partition ``debug``."""
    host = socket.gethostname().split(".")[0]
    for name in ("state", "spool"):
        _directory(root / name, 0o755)
    conf = root / "slurm.conf"
    controller_port, node_port = free_ports(2)
    conf.write_text(f"""# one-node cluster written by scripts/single_node_slurm.py
ClusterName=mbdl
SlurmctldHost={host}
SlurmctldPort={controller_port}
SlurmdPort={node_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
StateSaveLocation={root / 'state'}
SlurmdSpoolDir={root / 'spool'}
SlurmctldPidFile={root / 'slurmctld.pid'}
SlurmdPidFile={root / 'slurmd.pid'}
SlurmctldLogFile={root / 'slurmctld.log'}
SlurmdLogFile={root / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=3600
NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={int(0.9 * total_memory_mb())} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    return conf


def start(root: str | Path, timeout_s: float = 30) -> Cluster:
    """Start munged, slurmctld and slurmd with everything under ``root``; return when the node is idle."""
    root = _directory(Path(root).resolve(), 0o755)
    cluster = Cluster(root)
    try:
        conf = write_conf(root, _start_munged(root))
        bin_dir = _directory(root / "bin", 0o755)
        (bin_dir / "sacct").write_text(SACCT)
        (bin_dir / "sacct").chmod(0o755)
        env = {**os.environ, **cluster.env}
        subprocess.run(["slurmctld", "-f", str(conf)], check=True, capture_output=True, timeout=30, env=env)
        subprocess.run(["slurmd", "-f", str(conf)], check=True, capture_output=True, timeout=30, env=env)
        deadline = time.monotonic() + timeout_s
        state = ""
        while time.monotonic() < deadline:
            done = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=30, env=env)
            state = done.stdout.strip()
            if state == "idle":
                return cluster
            time.sleep(0.2)
        raise RuntimeError(f"the node did not become idle within {timeout_s} s (sinfo: {state!r})\n{cluster.logs()}")
    except BaseException:
        cluster.stop()
        raise


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("folder", help="where the cluster's configuration, state and logs live")
    args = parser.parse_args(argv)
    if args.action == "stop":
        Cluster(Path(args.folder).resolve()).stop()
        return
    if missing := missing_commands():
        raise SystemExit(f"error: {', '.join(missing)} not found: apt-get install {' '.join(PACKAGES)}")
    cluster = start(args.folder)
    print("export " + " ".join(f"{key}={shlex.quote(value)}" for key, value in cluster.env.items()))


if __name__ == "__main__":
    main()
