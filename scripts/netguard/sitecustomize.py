"""Log every attempt to reach the network from this Python process and its Python children.

Python imports this file at start-up when its folder is on PYTHONPATH; it does nothing unless
NETGUARD_LOG names a file. Then each connect, send or name lookup aimed anywhere but this
machine appends one line to that file: what was tried, and the Python frames that tried it.
Nothing is blocked; run under `unshare -n` for that (see scripts/run-offline).

    NETGUARD_LOG=/tmp/net.log PYTHONPATH=scripts/netguard .venv/bin/rag ask "..."
"""

import os

_LOG = os.environ.get("NETGUARD_LOG")

if _LOG:
    import ipaddress
    import socket
    import traceback

    _LOCAL_NAMES = {"", "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}

    def _is_local(host) -> bool:
        if host is None:
            return True
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        host = str(host).strip("[]").lower().split("%")[0]
        if host in _LOCAL_NAMES:
            return True
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return ip.is_loopback or ip.is_unspecified

    def _record(what: str) -> None:
        frames = [f for f in traceback.extract_stack() if f.filename != __file__]
        where = " < ".join(
            f"{os.path.basename(f.filename)}:{f.lineno} {f.name}" for f in reversed(frames[-40:])
        )
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(f"{what} (pid {os.getpid()}) from {where}\n")

    def _check_address(sock, address, verb: str) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
            if not _is_local(address[0]):
                _record(f"{verb} {address[0]}:{address[1]}")

    def _wrap_method(name: str, verb: str, min_args: int) -> None:
        original = getattr(socket.socket, name)

        def wrapper(self, *args, **kwargs):
            if len(args) >= min_args:  # the address is the last argument
                _check_address(self, args[-1], verb)
            return original(self, *args, **kwargs)

        wrapper.__name__ = name
        setattr(socket.socket, name, wrapper)

    _wrap_method("connect", "connect to", 1)
    _wrap_method("connect_ex", "connect to", 1)
    _wrap_method("sendto", "send to", 2)  # sendto(data, address) or sendto(data, flags, address)

    def _wrap_lookup(name: str) -> None:
        original = getattr(socket, name)

        def wrapper(host, *args, **kwargs):
            if not _is_local(host):
                _record(f"{name}({host!r})")
            return original(host, *args, **kwargs)

        wrapper.__name__ = name
        setattr(socket, name, wrapper)

    for _name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
        _wrap_lookup(_name)
