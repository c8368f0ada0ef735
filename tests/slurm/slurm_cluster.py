"""A real SLURM cluster (munge, MariaDB, slurmdbd, slurmctld, one slurmd per node) for tests.

``nodes`` compute nodes live on this one host: each node is its own ``slurmd -N NAME``
with its own port, spool, pid and log file, all reached at 127.0.0.1, so a job of
``--nodes=2`` really is split by SLURM over two daemons (two node names, two step
daemons), as on a cluster, while every task runs on this machine.

Everything lives under one temporary directory (configs, spool, state, logs, database,
sockets), every daemon listens on 127.0.0.1 on ports picked free at start, and every
daemon is stopped by its own pid file, so a test run leaves nothing behind and does not
collide with a cluster someone already runs. Clients find it through ``SLURM_CONF``.

MariaDB + slurmdbd are there so that ``sacct`` works: submitit watches job states with
sacct, and without it a job killed before writing its result leaves ``result()`` waiting.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("slurmctld", "slurmdbd", "mariadbd", "munged")  # stop order, after the slurmds
BINARIES = ("munged", "mariadbd", "mariadb-install-db", "mariadb", "slurmdbd", "slurmctld",
            "slurmd", "sbatch", "srun", "sacct", "scontrol", "sinfo", "squeue", "scancel")


class ClusterError(RuntimeError):
    """The cluster could not be brought up; the message names the daemon and its log."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    """False once ``pid`` is gone or a zombie (a zombie still answers kill(pid, 0))."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _node_hardware() -> dict[str, str]:
    """CPUs/Boards/Sockets/Cores/Threads/RealMemory as slurmd itself detects them."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    first = out.splitlines()[0].split()
    return dict(kv.split("=", 1) for kv in first if "=" in kv)


class LocalSlurmCluster:
    def __init__(self, root: str | os.PathLike | None = None, partition: str = "test", nodes: int = 2):
        missing = [b for b in BINARIES if shutil.which(b) is None]
        if missing:
            raise ClusterError("missing SLURM test dependencies: " + ", ".join(missing)
                               + " (run `make system-deps`)")
        self.root = Path(root or tempfile.mkdtemp(prefix="slurm-test-"))
        self.partition = partition
        self.host = socket.gethostname().split(".")[0]
        self.nodes = [f"{self.host}-{i}" for i in range(nodes)] if nodes > 1 else [self.host]
        self.node = self.nodes[0]
        self.conf = self.root / "etc" / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.ports = {k: _free_port() for k in ("ctld", "dbd", "mysql", *self.nodes)}
        self._db_password = secrets.token_hex(12)
        self._mariadb: subprocess.Popen | None = None

    # -- paths -------------------------------------------------------------------------
    def pidfile(self, daemon: str) -> Path:
        return self.root / "run" / f"{daemon}.pid"

    def log(self, daemon: str) -> Path:
        return self.root / "log" / f"{daemon}.log"

    @property
    def env(self) -> dict[str, str]:
        """Environment for clients (sbatch, sacct, ...) and the jobs they submit."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    # -- bring-up ----------------------------------------------------------------------
    def start(self, timeout: float = 180) -> "LocalSlurmCluster":
        for d in ("etc", "run", "log", "munge", "state", "spool", "db"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        # jobs run as the submitting user: they must reach the venv and the job folders
        os.chmod(self.root, 0o755)
        os.chmod(self.root / "munge", 0o711)  # clients need o+x to reach the socket
        try:
            self._start_munge(timeout)
            self._start_mariadb(timeout)
            self._write_configs()
            self._start_daemon("slurmdbd", ["slurmdbd"], lambda: _port_open(self.ports["dbd"]),
                               timeout)
            self._start_daemon("slurmctld", ["slurmctld", "-f", str(self.conf), "-i"],
                               lambda: self._ok(["scontrol", "ping"], "UP"), timeout)
            for node in self.nodes:
                self._start_daemon(f"slurmd-{node}", ["slurmd", "-f", str(self.conf), "-N", node],
                                   lambda: True, timeout)
            self._wait("slurmd", self._nodes_idle, timeout)
            self._wait("sacct", lambda: self._ok(["sacct", "-n", "-X", "-a"]), timeout)
        except subprocess.CalledProcessError as err:
            self.stop()
            out = (err.stderr or b"").decode(errors="replace") if isinstance(err.stderr, bytes) \
                else (err.stderr or "")
            raise ClusterError(f"{err.cmd[0]} failed (exit {err.returncode}): {out.strip()[-800:]}") \
                from None
        except BaseException:
            self.stop()
            raise
        return self

    def _start_munge(self, timeout: float) -> None:
        key = self.root / "munge" / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        subprocess.run(["munged", f"--socket={self.munge_socket}", f"--key-file={key}",
                        f"--pid-file={self.pidfile('munged')}", f"--log-file={self.log('munged')}",
                        f"--seed-file={self.root / 'munge' / 'munged.seed'}", "--force"],
                       check=True, capture_output=True)
        self._wait("munged", self.munge_socket.exists, timeout)

    def _start_mariadb(self, timeout: float) -> None:
        datadir = self.root / "db"
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={datadir}",
                        "--user=root", "--auth-root-authentication-method=normal",
                        "--skip-test-db"], check=True, capture_output=True)
        sock = self.root / "run" / "mysqld.sock"
        cmd = ["mariadbd", "--no-defaults", f"--datadir={datadir}", f"--socket={sock}",
               f"--port={self.ports['mysql']}", "--bind-address=127.0.0.1", "--user=root",
               f"--pid-file={self.pidfile('mariadbd')}", f"--log-error={self.log('mariadbd')}",
               "--innodb-buffer-pool-size=32M", "--skip-name-resolve"]
        self._mariadb = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
        self._wait("mariadbd", lambda: _port_open(self.ports["mysql"]), timeout)
        sql = (f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{self._db_password}';"
               "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';")
        subprocess.run(["mariadb", "--no-defaults", f"--socket={sock}", "-uroot", "-e", sql],
                       check=True, capture_output=True)

    def _write_configs(self) -> None:
        r, p, hw = self.root, self.ports, _node_hardware()
        auth = f"socket={self.munge_socket}"
        (r / "etc" / "slurmdbd.conf").write_text("\n".join([
            "AuthType=auth/munge", f"AuthInfo={auth}", "DbdHost=localhost", "DbdAddr=127.0.0.1",
            f"DbdPort={p['dbd']}", "SlurmUser=root", f"PidFile={self.pidfile('slurmdbd')}",
            f"LogFile={self.log('slurmdbd')}", "StorageType=accounting_storage/mysql",
            "StorageHost=127.0.0.1", f"StoragePort={p['mysql']}", "StorageUser=slurm",
            f"StoragePass={self._db_password}", "StorageLoc=slurm_acct_db", ""]))
        (r / "etc" / "slurmdbd.conf").chmod(0o600)
        cpus = int(hw["CPUs"])
        self.conf.write_text("\n".join([
            f"ClusterName=t{secrets.token_hex(3)}",
            f"SlurmctldHost={self.host}(127.0.0.1)", f"SlurmctldPort={p['ctld']}",
            f"SlurmdPort={p[self.nodes[0]]}", "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", "CredType=cred/munge",
            # the credential lifetime also delays a requeued job's restart (default 120 s)
            f"AuthInfo={auth},cred_expire=10",
            # %n: each node's slurmd has its own spool, pid and log file
            f"StateSaveLocation={r / 'state'}", f"SlurmdSpoolDir={r / 'spool' / '%n'}",
            f"SlurmctldPidFile={self.pidfile('slurmctld')}",
            f"SlurmdPidFile={self.pidfile('slurmd-%n')}",
            f"SlurmctldLogFile={self.log('slurmctld')}", f"SlurmdLogFile={self.log('slurmd-%n')}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",  # no cgroups here
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/slurmdbd",
            "AccountingStorageHost=127.0.0.1", f"AccountingStoragePort={p['dbd']}",
            # slurmctld's connection to slurmdbd ignores AuthInfo's socket
            f"AccountingStoragePass={self.munge_socket}",
            "SchedulerType=sched/backfill", "SchedulerParameters=bf_interval=1,sched_interval=2",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory",
            "MailProg=/bin/true", "MpiDefault=none", "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny",
            "ReturnToService=2", "JobRequeue=1", "MinJobAge=300", "KillWait=5",
            "InactiveLimit=0", "SlurmdTimeout=60", "DefMemPerCPU=1024",
            *(f"NodeName={node} NodeAddr=127.0.0.1 NodeHostname=127.0.0.1 Port={p[node]} "
              f"CPUs={cpus} Boards={hw['Boards']} SocketsPerBoard={hw['SocketsPerBoard']} "
              f"CoresPerSocket={hw['CoresPerSocket']} ThreadsPerCore={hw['ThreadsPerCore']} "
              f"RealMemory={min(int(hw['RealMemory']), 4096 * cpus)} State=UNKNOWN"
              for node in self.nodes),
            f"PartitionName={self.partition} Nodes={','.join(self.nodes)} Default=YES "
            "MaxTime=INFINITE State=UP", ""]))

    def _start_daemon(self, name: str, cmd: list[str], ready, timeout: float) -> None:
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ClusterError(f"{name} failed to start (exit {proc.returncode}): "
                               f"{proc.stderr.strip()[-800:]}; log: {self.log(name)}")
        self._wait(name, ready, timeout)

    def _wait(self, name: str, ready, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                tail = self.log(name).read_text()[-1500:] if self.log(name).exists() else ""
                raise ClusterError(f"{name} not ready after {timeout:.0f} s; "
                                   f"log {self.log(name)}:\n{tail}")
            time.sleep(0.2)

    def _ok(self, cmd: list[str], expect: str = "") -> bool:
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=30)
        return proc.returncode == 0 and expect in proc.stdout

    def _nodes_idle(self) -> bool:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], env=self.env,
                             capture_output=True, text=True, timeout=30).stdout
        states = dict(line.split() for line in out.splitlines() if line.strip())
        return all(states.get(n, "").startswith("idle") for n in self.nodes)

    # -- use ---------------------------------------------------------------------------
    def client(self, *cmd: str, check: bool = True) -> str:
        """Run a SLURM client command (``squeue``, ``sacct`` ...) against this cluster."""
        proc = subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def job_ids(self) -> list[str]:
        if not self.pidfile("slurmctld").exists():
            return []
        return self.client("squeue", "-h", "-o", "%i", check=False).split()

    # -- tear-down ---------------------------------------------------------------------
    def stop(self, timeout: float = 30) -> None:
        """Cancel this cluster's jobs, stop each daemon by its pid file, remove the tree."""
        if self.job_ids():
            self.client("scancel", "--full", *self.job_ids(), check=False)
            deadline = time.monotonic() + timeout
            while self.job_ids() and time.monotonic() < deadline:
                time.sleep(0.5)
        for name in [f"slurmd-{n}" for n in self.nodes] + list(DAEMONS):
            self._stop_pid(name, timeout)
        if self._mariadb is not None:
            try:
                self._mariadb.wait(timeout)
            except subprocess.TimeoutExpired:
                self._mariadb.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def _stop_pid(self, name: str, timeout: float) -> None:
        path = self.pidfile(name)
        try:
            pid = int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._mariadb is not None and name == "mariadbd":
                self._mariadb.poll()  # reap our own child
            if not _alive(pid):
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)

    def __enter__(self) -> "LocalSlurmCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
