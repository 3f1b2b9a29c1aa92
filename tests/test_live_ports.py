"""tests/live.py's free_port: ports for the servers tests start, never from the kernel's ephemeral range."""
import pytest

from tests import live


@pytest.fixture
def ephemeral_range(tmp_path, monkeypatch):
    """Sets the host's ephemeral range free_port reads (the /proc file's format: low and high, tab-separated)."""
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")

    def set_range(low, high):
        path = tmp_path / "ip_local_port_range"
        path.write_text(f"{low}\t{high}\n")
        monkeypatch.setattr(live, "EPHEMERAL_PORTS_FILE", path)
    return set_range


def test_a_port_the_kernel_may_give_an_outgoing_connection_is_never_picked(ephemeral_range):
    band = range(live.PORT_BANDS_START, live.PORT_BANDS_START + live.PORT_BAND_SIZE)
    ephemeral_range(band.start, band.start + 499)  # a host whose range starts inside the first band
    ports = {live.free_port() for _ in range(live.PORT_BAND_SIZE)}
    assert ports and all(port in band and port >= band.start + 500 for port in ports)


def test_a_band_wholly_inside_the_ephemeral_range_says_so(ephemeral_range):
    ephemeral_range(1024, 65535)
    with pytest.raises(RuntimeError, match="outside the ephemeral ports 1024..65535"):
        live.free_port()


def test_without_the_proc_file_linuxs_default_range_is_assumed(tmp_path, monkeypatch):
    monkeypatch.setattr(live, "EPHEMERAL_PORTS_FILE", tmp_path / "missing")
    assert live.ephemeral_ports() == range(32768, 61000)
