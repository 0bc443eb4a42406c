"""The Gradio chat UI: layout and wiring only. Import it to run the UI, nothing else.

    rag serve                      # http://127.0.0.1:7860, indexes seeds/ first
    >>> from ui.app import serve; serve(Settings.load(), auth="me:secret")

The page's own events are private; scripts use the named endpoints in ui/api.py.
"""

from __future__ import annotations

import ipaddress
import logging
import sys
from contextlib import closing
from html import escape
from pathlib import Path

import gradio as gr

from rag import Answer, InputError, RagError, Settings

from . import render
from .api import ANSWER_WORKERS, ANSWERS, INDEX, add_endpoints
from .assets import CSS, HEAD, PENDING_REF_JS, SCROLL_JS, theme
from .collection import intro
from .service import SWITCH_OFF, UPLOAD_TYPES, Service, megabytes
from .throttle import login_throttle

log = logging.getLogger(__name__)

FOLLOW_UP_HINT = (
    '<div class="rag-hint">Follow-up questions ("what did he say next?") are searched '
    "together with the question before them.</div>"
)


def _unlocked() -> tuple:
    """The question box and the Ask button, usable again."""
    return gr.update(interactive=True), gr.update(interactive=True)


def build_app(service: Service) -> gr.Blocks:
    s = service.settings
    limit = megabytes(s.max_upload_bytes)
    switching = s.allow_model_switch and not s.llm_url
    opening = intro(service.pipeline.index, s.collection)

    def chat_intro():
        """The empty chat's wording and examples, for the documents indexed now."""
        now = intro(service.pipeline.index, s.collection)
        return gr.update(placeholder=now.placeholder, examples=_examples(now.examples))

    # -- chat --------------------------------------------------------------------------
    def accept(question, messages):
        """Show the question at once (it may wait in the queue) and lock the input."""
        question = (question or "").strip()
        if not question:
            return messages, "", gr.update(), gr.update()
        shown = [*(messages or []), _user(question), _bot(render.waiting_html())]
        return shown, question, gr.update(value="", interactive=False), gr.update(interactive=False)

    def accept_example(messages, evt: gr.SelectData):
        return accept(evt.value["text"], messages)

    # Clearing a conversation while its answer streams: the answer stops and shows nothing
    # more. (gradio's `cancels=` would do it too, but paints an "Error" over the chat.)
    clears: dict[str, int] = {}  # session -> how many times it was cleared

    def respond(question, messages, questions, top_k, mode, request: gr.Request):
        """Answer first: the checked quote (or abstention) as soon as it is ready; then, if the
        model's rewrite passes the check, the rewrite in its place. The rewrite's raw text is
        never shown. The last step unlocks the input, unless the conversation was cleared
        meanwhile: then this answer stops at its next step and touches nothing (the clearing
        unlocked the input, and a new question may already be on its way)."""
        if not question:
            yield gr.skip(), gr.skip(), *_unlocked()
            return
        session = request.session_hash or ""
        started = clears.get(session, 0)
        base = list(messages or [])[:-1]  # drop the "waiting" placeholder
        yield [*base, _bot(render.pending_html())], questions, gr.skip(), gr.skip()
        answer = None
        # closed explicitly, so a cleared answer lets go of the model at once
        with closing(service.stream(question, questions, top_k, mode)) as events:
            try:
                for event in events:
                    if clears.get(session, 0) != started:
                        return
                    if isinstance(event, Answer):
                        answer = event
                        if not event.final:
                            yield (
                                [*base, _bot(render.answer_html(event))],
                                questions,
                                gr.skip(),
                                gr.skip(),
                            )
            except RagError as e:
                yield [*base, _bot(render.error_html(str(e)))], questions, *_unlocked()
                return
            except Exception:
                log.exception("answering %r failed", question)
                msg = "something went wrong while answering; the server log has the details"
                yield [*base, _bot(render.error_html(msg))], questions, *_unlocked()
                return
        if clears.get(session, 0) != started:
            return
        yield [*base, _bot(render.answer_html(answer))], [*questions, question], *_unlocked()

    def show_source(ref):
        try:
            target = render.parse_ref(ref)
            title, source, text, start, end, note = service.source(target)
            return render.article_html(target.doc_id, title, source, text, start, end, note)
        except RagError as e:
            return render.error_html(str(e))

    def reset(request: gr.Request):
        session = request.session_hash or ""
        clears[session] = clears.get(session, 0) + 1
        return (
            [],
            [],
            render.VIEWER_HINT,
            gr.update(value="", interactive=True),
            gr.update(interactive=True),
        )

    # -- documents -----------------------------------------------------------------------
    def doc_views():
        rows = service.documents()
        choices = [(f"{r.title} ({Path(r.file).name})", r.doc_id) for r in rows]
        return render.documents_html(rows), gr.update(choices=choices, value=None)

    def add_files(files, job_ids):
        """Queue the files for indexing in the background and start watching them: a big
        upload holds up neither this page nor anyone's questions."""
        waiting = [j.id for j in service.upload_jobs(job_ids) if not j.finished]
        new = [service.submit_upload(path, Path(path).name).id for path in files or []]
        ids = waiting + new
        return render.uploads_html(service.upload_jobs(ids)), ids, gr.Timer(active=True), None

    def watch_uploads(job_ids):
        """Every second while this page's uploads are indexed: their progress, and once all
        are done, the refreshed document list and the chat's wording for them."""
        jobs = service.upload_jobs(job_ids)
        if any(not j.finished for j in jobs):
            return render.uploads_html(jobs), gr.skip(), gr.skip(), gr.Timer(active=True), gr.skip()
        return render.uploads_html(jobs), *doc_views(), gr.Timer(active=False), chat_intro()

    def remove_doc(doc_id):
        if not doc_id:
            line = (False, "choose a document to remove first")
            return render.status_html([line]), *doc_views(), gr.skip()
        try:
            line = (True, service.remove(doc_id))
        except RagError as e:
            line = (False, str(e))
        return render.status_html([line]), *doc_views(), chat_intro()

    # -- model -----------------------------------------------------------------------------
    def model_status():
        return (
            f'<div class="rag-file">Answering with <b>{escape(service.model_name())}</b>; '
            f"{escape(service.reader_name())}.</div>"
        )

    def load_model(name):
        try:
            line = (True, service.use_model(name))
        except RagError as e:
            line = (False, f"{e}; still answering with {service.model_name()}")
        return (
            render.status_html([line]) + model_status(),
            gr.update(choices=list(service.models()), value=service.model),
        )

    def refresh():
        views = (chat_intro(), *doc_views(), model_status())
        if not switching:
            return views
        return (*views, gr.update(choices=list(service.models()), value=service.model))

    # -- layout --------------------------------------------------------------------------
    private = {"api_visibility": "private"}
    with gr.Blocks(title=opening.title, analytics_enabled=False) as demo:
        questions = gr.State([])  # this conversation's earlier questions, per session
        pending = gr.State("")  # the question being answered
        gr.HTML(opening.header)
        with gr.Tabs():
            with gr.Tab("Ask"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3, min_width=360):
                        chat = gr.Chatbot(
                            label="Conversation",
                            show_label=False,
                            elem_id="rag-chat",
                            height=600,
                            render_markdown=False,
                            sanitize_html=True,
                            latex_delimiters=[],
                            buttons=[],
                            feedback_options=None,
                            layout="panel",
                            examples=_examples(opening.examples),
                            placeholder=opening.placeholder,
                        )
                        with gr.Row(equal_height=True):
                            box = gr.Textbox(
                                placeholder=opening.prompt,
                                label="Question",
                                scale=6,
                                max_lines=4,
                                autofocus=True,
                                elem_id="rag-question",
                                container=False,
                            )
                            ask_btn = gr.Button(
                                "Ask", variant="primary", scale=1, min_width=80, elem_id="rag-ask"
                            )
                        with gr.Row(equal_height=False):
                            clear = gr.Button(
                                "Clear conversation",
                                size="sm",
                                scale=0,
                                min_width=160,
                                elem_id="rag-clear",
                            )
                            gr.HTML(FOLLOW_UP_HINT)
                    with gr.Column(scale=2, min_width=320):
                        viewer = gr.HTML(
                            render.VIEWER_HINT,
                            elem_id="rag-viewer",
                            label="Source",
                            show_label=True,
                            container=True,
                        )
                ref = gr.Textbox(visible="hidden", elem_id="rag-ref")
                open_btn = gr.Button("open source", visible="hidden", elem_id="rag-open-source")
            with gr.Tab("Documents") as docs_tab:
                docs_html = gr.HTML(elem_id="rag-docs")
                gr.HTML(
                    f'<div class="rag-hint">Uploaded files are saved in {escape(str(s.uploads_path))}/ '
                    "and can be asked about as soon as they are indexed.</div>"
                )
                files = gr.File(
                    label=f"Add documents: {', '.join(UPLOAD_TYPES)}, up to {limit} each",
                    file_count="multiple",
                    file_types=list(UPLOAD_TYPES),
                    type="filepath",
                    elem_id="rag-upload",
                    height=120,
                )
                status = gr.HTML(elem_id="rag-status")
                uploads = gr.State([])  # ids of this page's upload jobs
                watch = gr.Timer(1.0, active=False)
                with gr.Row(equal_height=False):
                    pick = gr.Dropdown(
                        label="Remove a document", choices=[], scale=4, elem_id="rag-remove-pick"
                    )
                    remove_btn = gr.Button(
                        "Remove",
                        variant="stop",
                        scale=0,
                        min_width=120,
                        elem_id="rag-remove",
                        elem_classes=["rag-align-end"],
                    )
            with gr.Tab("Settings"):
                gr.Markdown("**Model** — shared by everyone using this server.")
                # Only names from service.models() can be chosen, and only if the server was
                # started to allow it: a switch changes the model for everyone.
                model = None
                if switching:
                    with gr.Row(equal_height=False):
                        model = gr.Dropdown(
                            label=f"The bundled model or a .gguf file in {s.models_dir}/",
                            choices=list(service.models()),
                            value=service.model,
                            scale=3,
                            elem_id="rag-model",
                            # the service decides what may be loaded, with a reply that names
                            # no path (gradio's own check would echo whatever was sent)
                            allow_custom_value=True,
                        )
                        load_btn = gr.Button(
                            "Load model", scale=0, min_width=140, elem_classes=["rag-align-end"]
                        )
                model_msg = gr.HTML(model_status())
                if not switching and not s.llm_url:
                    hint = SWITCH_OFF[0].upper() + SWITCH_OFF[1:]
                    gr.HTML(f'<div class="rag-hint">{escape(hint)}.</div>')
                gr.Markdown("**Answers** — for this browser tab only.")
                top_k = gr.Slider(
                    *Settings.limits("top_k"),
                    value=s.top_k,
                    step=1,
                    label="Passages to retrieve (top-k)",
                )
                mode = gr.Radio(
                    [
                        ("Generate an answer, then check it", "generate"),
                        ("Only quote the sources", "extractive"),
                    ],
                    value=s.mode,
                    label="Answer mode",
                )

        # -- wiring ------------------------------------------------------------------------
        locked = [chat, pending, box, ask_btn]
        for trigger in (
            gr.on([box.submit, ask_btn.click], accept, [box, chat], locked, queue=False, **private),
            chat.example_select(accept_example, chat, locked, queue=False, **private),
        ):
            trigger.then(
                respond,
                [pending, chat, questions, top_k, mode],
                [chat, questions, box, ask_btn],
                concurrency_id=ANSWERS,
                # quotes are found side by side; rewrites wait for the one LLM (its own lock)
                concurrency_limit=ANSWER_WORKERS,
                show_progress="minimal",
                # a question asked right after Clear must not wait for the cleared answer
                trigger_mode="multiple",
                **private,
            )
        for clearing in (clear.click, chat.clear):
            clearing(reset, None, [chat, questions, viewer, box, ask_btn], queue=False, **private)
        open_btn.click(
            show_source,
            ref,
            viewer,
            js=PENDING_REF_JS,
            show_progress="hidden",
            concurrency_limit=None,
            **private,
        ).then(None, None, None, js=SCROLL_JS)

        files.upload(
            add_files, [files, uploads], [status, uploads, watch, files], queue=False, **private
        )
        watch.tick(
            watch_uploads,
            uploads,
            [status, docs_html, pick, watch, chat],
            queue=False,
            show_progress="hidden",
            **private,
        )
        remove_btn.click(
            remove_doc,
            pick,
            [status, docs_html, pick, chat],
            concurrency_id=INDEX,
            concurrency_limit=1,
            show_progress_on=[status, docs_html, pick],
            **private,
        )
        docs_tab.select(doc_views, None, [docs_html, pick], queue=False, **private)
        if model is not None:
            load_btn.click(load_model, model, [model_msg, model], **private)
        shown = [chat, docs_html, pick, model_msg, *([model] if model is not None else [])]
        demo.load(refresh, None, shown, queue=False, **private)

        add_endpoints(service)
    return demo


def _examples(questions) -> list[dict] | None:
    return [{"text": q} for q in questions] or None


def _user(question: str) -> dict:
    return {"role": "user", "content": render.user_html(question)}


def _bot(html: str) -> dict:
    return {"role": "assistant", "content": html}


# -- running it -----------------------------------------------------------------------------
def parse_auth(auth: str | None) -> tuple[str, str] | None:
    if not auth:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise InputError("--auth must be USER:PASSWORD, both non-empty (RAG_AUTH)")
    return user, password


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_warning(host: str, port: int, has_password: bool) -> str:
    """What to tell the person starting the server when it listens beyond this machine."""
    if is_loopback(host):
        return ""
    lock = "" if has_password else "; no password is set (--auth USER:PASSWORD)"
    return (
        f"warning: binding {host}, not loopback: anyone who can reach this machine on port "
        f"{port} can use the app{lock}"
    )


def launch(
    demo: gr.Blocks,
    settings: Settings,
    auth: tuple[str, str] | None = None,
    block: bool = True,
    quiet: bool = False,
):
    """Start the server on settings.host:settings.port with everything served locally.
    Returns gradio's (app, local_url, share_url); with block=True, only after Ctrl-C."""
    demo.queue(default_concurrency_limit=1)
    try:
        return demo.launch(
            server_name=settings.host,
            server_port=settings.port,
            share=False,
            auth=auth,
            auth_message="Sign in to ask the documents." if auth else None,
            theme=theme(),
            css=CSS,
            head=HEAD,
            max_file_size=settings.max_upload_bytes,
            footer_links=["api"],
            run_history=False,
            enable_monitoring=False,
            ssr_mode=False,
            pwa=False,
            mcp_server=False,
            # wrong passwords from one address are slowed down (see ui/throttle.py)
            app_kwargs={"middleware": [login_throttle()]} if auth else None,
            prevent_thread_lock=not block,
            quiet=quiet,
        )
    except OSError as e:
        if "port" not in str(e):
            raise
        raise InputError(
            f"port {settings.port} on {settings.host} is in use: stop what uses it or pass "
            "--port N (RAG_PORT)"
        ) from None


def serve(settings: Settings, auth: str | None = None, index_paths=("seeds",)) -> int:
    """`rag serve`: index `index_paths`, then serve the UI until Ctrl-C. Returns an exit code."""
    credentials = parse_auth(auth)
    warning = bind_warning(settings.host, settings.port, credentials is not None)
    if warning:
        print(warning, file=sys.stderr)
    service = Service.start(settings, list(index_paths))
    demo = build_app(service)
    launch(demo, settings, auth=credentials)
    return 0
