"""What a stranger can do to a served app, over real HTTP against a real Gradio server: choose
the model only by name from the models folder (and only if the server allows it), get plain
one-line errors, and not guess passwords at speed."""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest
from gradio_client.exceptions import AppError

from rag.llm.generate import bundled_gguf_path
from ui.service import BUNDLED, SWITCH_OFF
from ui.throttle import FREE_FAILURES, LoginThrottle

from .test_ui_api import SPLIT, client_for
from .ui_helpers import make_service, running


def upload_raw(url: str, path: Path) -> str:
    """Bytes sent to gradio's own upload route, as an attacker would: returns the server path."""
    with open(path, "rb") as f:
        r = httpx.post(f"{url}gradio_api/upload", files={"files": (path.name, f)})
    r.raise_for_status()
    return r.json()[0]


def call_event(url: str, fn_index: int, data: list) -> dict:
    """Run one of the page's private events through the queue, as the browser does, and return
    gradio's final message ({"success": ..., "output": {...}})."""
    session = uuid.uuid4().hex
    join = httpx.post(
        f"{url}gradio_api/queue/join",
        json={"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None},
    )
    join.raise_for_status()
    with httpx.stream(
        "GET", f"{url}gradio_api/queue/data", params={"session_hash": session}, timeout=120
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    return msg
    raise AssertionError("the queue closed without completing the event")


def event_index(url: str, button_label: str) -> int:
    """The fn_index of the event a button with this label triggers."""
    config = httpx.get(f"{url}config").json()
    ids = [c["id"] for c in config["components"] if c["props"].get("value") == button_label]
    for dep in config["dependencies"]:
        if any(t[0] in ids for t in dep["targets"]):
            return dep["id"]
    raise LookupError(button_label)


# -- choosing the model ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def models_folder(tmp_path_factory):
    """A models folder with a real model (a link to the bundled file) and a fake one; next to it,
    outside the folder, a real model that must not be reachable."""
    root = tmp_path_factory.mktemp("models-root")
    folder = root / "models"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "smol.gguf").symlink_to(bundled_gguf_path())
    (folder / "fake.gguf").write_bytes(b"GGUF but not a model")
    (root / "outside.gguf").symlink_to(bundled_gguf_path())
    return folder


@pytest.fixture(scope="module")
def switchable(tmp_path_factory, seed_settings, embedder, models_folder):
    root = tmp_path_factory.mktemp("switch")
    service = make_service(root, seed_settings, embedder, allow_model_switch=True)
    service.settings = service.settings.replace(models_dir=str(models_folder))
    with running(service) as url:
        yield service, url


def test_the_models_offered_are_names_in_the_models_folder(switchable):
    service, _ = switchable
    assert list(service.models()) == [BUNDLED, "fake.gguf", "sub/smol.gguf"]
    assert service.model == BUNDLED


def leaks(message: str, models_folder: Path) -> list[str]:
    """Paths a message names outside the models folder (`</div>` and `sub/x.gguf` are not)."""
    paths = re.findall(r"(?<![<\w])/[\w.\-]+(?:/[\w.\-]*)*", message.replace("\\/", "/"))
    return [p for p in paths if not p.startswith(str(models_folder))]


@pytest.mark.slow
def test_a_path_outside_the_folder_is_refused_without_saying_what_exists(
    switchable, models_folder, tmp_path
):
    service, url = switchable
    client = client_for(url)
    secret = tmp_path / "secret.gguf"
    secret.write_bytes(b"GGUF secret bytes")
    probes = [
        "/etc/passwd",
        "/root/.bash_history",
        "/no/such/file.gguf",
        str(models_folder.parent / "outside.gguf"),  # a real model, just outside
        "../outside.gguf",
        "sub/../../outside.gguf",
        str(models_folder / ".." / "outside.gguf"),
        upload_raw(url, secret),  # bytes sent through gradio's upload route
        str(models_folder / "fake.gguf"),  # a full path, even inside the folder: names only
    ]
    messages = set()
    for probe in probes:
        with pytest.raises(AppError) as err:
            client.predict(probe, api_name="/use_model")
        messages.add(str(err.value))
        assert leaks(str(err.value), models_folder) == [], probe
    # the same answer whether the file exists or not
    assert len(messages) == 1, messages
    assert "choose a model from the list" in messages.pop()
    assert client.predict(api_name="/models")["in_use"] == BUNDLED
    assert service.pipeline.generator is None


@pytest.mark.slow
def test_the_page_event_refuses_an_uploaded_file_too(switchable, models_folder, tmp_path):
    """The Settings tab's own (private) event, called over raw HTTP with a path to bytes the
    caller uploaded: refused, and the reply names no path outside the models folder."""
    service, url = switchable
    payload = tmp_path / "payload.gguf"
    payload.write_bytes(b"GGUF" + b"\x00" * 64)
    uploaded = upload_raw(url, payload)
    fn = event_index(url, "Load model")
    for probe in (uploaded, "/root/.bash_history", "../outside.gguf"):
        msg = call_event(url, fn, [probe])
        text = json.dumps(msg["output"])
        assert "choose a model from the list" in text, text
        assert leaks(text, models_folder) == [], text
    assert service.model == BUNDLED and service.pipeline.generator is None


@pytest.mark.slow
def test_a_model_in_the_folder_loads_by_name_and_a_bad_one_keeps_the_current(
    switchable, models_folder
):
    service, url = switchable
    client = client_for(url)
    with pytest.raises(AppError) as err:
        client.predict("fake.gguf", api_name="/use_model")
    assert "fake.gguf could not be loaded" in str(err.value)
    assert leaks(str(err.value), models_folder) == []
    assert service.model == BUNDLED

    assert client.predict("sub/smol.gguf", api_name="/use_model") == (
        "now answering with smol.gguf"
    )
    assert client.predict(api_name="/models")["in_use"] == "sub/smol.gguf"
    assert client.predict(BUNDLED, api_name="/use_model").startswith("now answering with SmolLM2")


@pytest.mark.slow
def test_switching_is_off_unless_the_server_allows_it(tmp_path, seed_settings, embedder):
    service = make_service(tmp_path, seed_settings, embedder)
    models = Path(service.settings.models_dir)
    models.mkdir()
    (models / "other.gguf").symlink_to(bundled_gguf_path())
    with running(service) as url:
        client = client_for(url)
        assert client.predict(api_name="/models") == {
            "models": [BUNDLED, "other.gguf"],
            "in_use": BUNDLED,
            "switching": False,
        }
        for name in ("other.gguf", BUNDLED, "/etc/passwd"):
            with pytest.raises(AppError) as err:
                client.predict(name, api_name="/use_model")
            assert str(err.value) == SWITCH_OFF
        # the page offers no switch, and says how to allow one
        config = httpx.get(f"{url}config").json()
        values = [c["props"].get("value") for c in config["components"]]
        assert "Load model" not in values
        assert any(isinstance(v, str) and "--allow-model-switch" in v for v in values)
    assert service.pipeline.generator is None


def test_model_switching_is_a_setting_off_by_default_and_a_serve_flag():
    from rag import InputError, Settings
    from rag.cli import build_parser

    assert Settings.load(env={}).allow_model_switch is False
    assert Settings.load(env={"RAG_ALLOW_MODEL_SWITCH": "1"}).allow_model_switch is True
    assert Settings.load(env={"RAG_ALLOW_MODEL_SWITCH": "off"}).allow_model_switch is False
    with pytest.raises(InputError, match='RAG_ALLOW_MODEL_SWITCH="maybe" must be 1 or 0'):
        Settings.load(env={"RAG_ALLOW_MODEL_SWITCH": "maybe"})
    args = build_parser().parse_args(["serve", "--allow-model-switch", "--models-dir", "m"])
    assert (args.allow_model_switch, args.models_dir) == (True, "m")
    assert build_parser().parse_args(["serve"]).allow_model_switch is None  # the variable decides


# -- errors an API client gets -----------------------------------------------------------------
@pytest.mark.slow
def test_api_errors_are_plain_text_not_html(switchable):
    client = client_for(switchable[1])
    with pytest.raises(AppError) as err:
        client.predict("o'brien <b>", api_name="/remove")
    assert str(err.value) == 'no document "o\'brien <b>" in the index; refresh the list'


@pytest.mark.slow
@pytest.mark.parametrize(
    "start,end,message",
    [
        ("abc", 10, "start must be a character offset, a whole number of 0 or more, not 'abc'"),
        (0, "1e3", "end must be a character offset, a whole number of 0 or more, not '1e3'"),
        (-5, 10, "start must be a character offset, a whole number of 0 or more, not '-5'"),
        (None, 10, "start must be a character offset, a whole number of 0 or more, not 'None'"),
        (2.5, 10, "start must be a character offset, a whole number of 0 or more, not '2.5'"),
    ],
)
def test_source_with_a_bad_offset_gets_one_line_not_a_traceback(switchable, start, end, message):
    client = client_for(switchable[1])
    with pytest.raises(AppError) as err:
        client.predict(SPLIT, start, end, api_name="/source")
    assert str(err.value) == message
    # a whole number sent as text is read as one
    r = client.predict(SPLIT, "0", "3", api_name="/source")
    assert (r["start"], r["end"]) == (0, 3)


# -- guessing passwords --------------------------------------------------------------------
def login(url: str, password: str, source: str = "127.0.0.1") -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport) as http:
        return http.post(f"{url}login", data={"username": "ann", "password": password})


@pytest.fixture()
def guarded(tmp_path, seed_settings, embedder):
    service = make_service(tmp_path, seed_settings, embedder)
    with running(service, auth=("ann", "s3cret")) as url:
        yield url


@pytest.mark.slow
def test_wrong_passwords_lock_the_address_out_for_longer_each_time(guarded):
    url = guarded
    assert login(url, "s3cret").status_code == 200
    codes = [login(url, f"guess-{i}").status_code for i in range(FREE_FAILURES)]
    assert codes == [400] * FREE_FAILURES
    locked = login(url, "guess-again")
    assert locked.status_code == 429 and locked.headers["retry-after"] == "1"
    assert locked.json()["detail"] == (
        "too many wrong passwords from this address; try again in 1 s"
    )
    # while locked out even the right password is not checked: a guess cannot be confirmed
    assert login(url, "s3cret").status_code == 429
    # another address is not locked out, and the right password is let straight in
    assert login(url, "s3cret", source="127.0.0.2").status_code == 200

    time.sleep(1.1)
    assert login(url, "guess-late").status_code == 400
    locked = login(url, "guess-again")
    assert locked.status_code == 429 and locked.headers["retry-after"] == "2"

    time.sleep(2.1)
    assert login(url, "s3cret").status_code == 200  # and the record is cleared
    assert login(url, "guess-after").status_code == 400


@pytest.mark.slow
def test_two_hundred_guesses_get_a_handful_of_answers(guarded):
    """The probe that took 200 guesses in 1.7 s: now all but a few are refused unchecked."""
    url = guarded
    started = time.monotonic()
    codes = [login(url, f"guess-{i}").status_code for i in range(200)]
    elapsed = time.monotonic() - started
    # lockouts of 1, 2, 4, ... s: at most one more checked guess per lockout that ran out
    most = FREE_FAILURES + 1 + int(math.log2(elapsed + 1))
    assert set(codes) == {400, 429}
    assert codes[:FREE_FAILURES] == [400] * FREE_FAILURES and codes[FREE_FAILURES] == 429
    assert codes.count(400) <= most, (codes.count(400), elapsed)


def test_the_throttle_doubles_each_lockout_up_to_a_limit_and_forgets():
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for _ in range(FREE_FAILURES):
        assert throttle.wait("a") == 0
        throttle.attempt("a")
    waits = [throttle.wait("a")]
    for _ in range(12):
        now[0] += waits[-1]
        assert throttle.wait("a") == 0
        throttle.attempt("a")
        waits.append(throttle.wait("a"))
    assert waits[:4] == [1, 2, 4, 8] and waits[-1] == 300  # five minutes at most
    assert throttle.wait("b") == 0
    throttle.attempt("a")
    now[0] += 3600
    assert throttle.wait("a") == 0
    throttle.attempt("a")
    assert throttle.wait("a") == 0  # forgotten after a quiet hour: counting starts again
