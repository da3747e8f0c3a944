"""The emulator over TLS, and the worker's connection verifying it.

The worker trusts a private authority only when ``RELAYBRIDGE_RELAY_CA_FILE`` names
it; the system's store, or another authority, refuses the same server. Nothing
here turns verification off.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core import checks
from django.test import override_settings

from bench.tls import Certificates, make_certificates
from relaybridge.checks import check_setting_values
from relaybridge.testing import TEST_APP_TOKEN, EmulatorProcess, running_emulator
from relaybridge.worker.handshake import RelayConnectError, open_relay_connection
from relaybridge.worker.options import WorkerOptions


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def other_authority(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("other"), name="someone else")


async def test_the_worker_trusting_the_authority_talks_to_the_emulator_over_tls(
    certificates: Certificates,
) -> None:
    async with running_emulator(
        tls_cert=str(certificates.cert_file), tls_key=str(certificates.key_file)
    ) as relay:
        assert relay.url.startswith("wss://127.0.0.1:")
        conn = await open_relay_connection(
            relay.url, TEST_APP_TOKEN, ca_file=str(certificates.ca_file)
        )
        try:
            await conn.send(json.dumps({"type": "ping"}))
            answer = json.loads(await conn.recv())
        finally:
            await conn.close()
    assert answer["type"] == "pong"


@pytest.mark.parametrize("trusting", ["system", "another authority"])
async def test_an_untrusted_certificate_is_refused(
    certificates: Certificates, other_authority: Certificates, trusting: str
) -> None:
    ca_file = None if trusting == "system" else str(other_authority.ca_file)
    async with running_emulator(
        tls_cert=str(certificates.cert_file), tls_key=str(certificates.key_file)
    ) as relay:
        with pytest.raises(RelayConnectError) as refused:
            await open_relay_connection(relay.url, TEST_APP_TOKEN, ca_file=ca_file)
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
    assert TEST_APP_TOKEN not in str(refused.value)


async def test_a_ca_file_that_is_not_one_is_a_connect_error_not_a_crash(
    certificates: Certificates, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    async with running_emulator(
        tls_cert=str(certificates.cert_file), tls_key=str(certificates.key_file)
    ) as relay:
        with pytest.raises(RelayConnectError, match="RELAYBRIDGE_RELAY_CA_FILE"):
            await open_relay_connection(relay.url, TEST_APP_TOKEN, ca_file=str(junk))


def test_the_emulator_process_serves_wss_with_a_certificate(certificates: Certificates) -> None:
    emulator = EmulatorProcess(
        args=["--tls-cert", str(certificates.cert_file), "--tls-key", str(certificates.key_file)]
    )
    emulator.start()
    try:
        assert emulator.url.startswith("wss://127.0.0.1:")
    finally:
        emulator.kill()


def test_a_certificate_without_its_key_is_refused() -> None:
    from relaybridge.testing import emulator_config

    with pytest.raises(ValueError, match="both"):
        emulator_config(tls_cert="server.pem")


def test_the_worker_reads_the_ca_file_setting_and_the_check_refuses_a_bad_one(
    certificates: Certificates, tmp_path: Path
) -> None:
    assert WorkerOptions.from_settings("wss://relay.example/v1/ws/app", "t").ca_file is None
    with override_settings(RELAYBRIDGE_RELAY_CA_FILE=certificates.ca_file):
        options = WorkerOptions.from_settings("wss://relay.example/v1/ws/app", "t")
        assert options.ca_file == str(certificates.ca_file)
        assert check_setting_values() == []
    for bad in (tmp_path / "missing.pem", 42):
        with override_settings(RELAYBRIDGE_RELAY_CA_FILE=bad):
            found = check_setting_values()
        assert [m.id for m in found] == ["relaybridge.E006"]
        assert found[0].level == checks.ERROR
        assert "RELAYBRIDGE_RELAY_CA_FILE" in found[0].msg
