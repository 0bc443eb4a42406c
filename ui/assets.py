"""The page's look and its one piece of JavaScript, kept as strings so they ship inside the
package. Nothing here refers to another host: system fonts only, no CDN, no web fonts."""

from __future__ import annotations

import gradio as gr

SANS = [
    "ui-sans-serif",
    "system-ui",
    "-apple-system",
    "Segoe UI",
    "Roboto",
    "Helvetica Neue",
    "Arial",
    "sans-serif",
]
MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]


def theme() -> gr.themes.Base:
    """Gradio's default theme with system fonts: plain font names create no stylesheet link,
    where the default font objects may point at Google Fonts."""
    return gr.themes.Default(primary_hue="blue", neutral_hue="slate", font=SANS, font_mono=MONO)


# Clicking a citation: the chat's sanitizer keeps href but drops data-* attributes, so links
# carry "#rag-source/<doc>/<start>/<end>/<digest>". A capturing listener stops the navigation,
# leaves the ref where the hidden "open source" event's js= can read it, and clicks that
# event's hidden button. After the server answers, ragScrollToHit centres the <mark>.
HEAD = """
<script>
(() => {
  const PREFIX = "#rag-source/";
  window.ragPendingRef = "";
  document.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest('a[href^="' + PREFIX + '"]');
    if (!link) return;
    event.preventDefault();
    event.stopPropagation();
    window.ragPendingRef = link.getAttribute("href");
    let button = document.getElementById("rag-open-source");
    if (button && button.tagName !== "BUTTON") button = button.querySelector("button");
    if (button) button.click();
  }, true);
  window.ragScrollToHit = (ref, tries = 120) => {
    const want = (ref || window.ragPendingRef || "").slice(PREFIX.length).split("/").slice(0, 3).join("/");
    const hit = document.querySelector("#rag-viewer mark.rag-hit");
    const box = document.querySelector("#rag-viewer .rag-article");
    if (!hit || !box || (want && hit.dataset.ref !== want)) {
      if (tries > 0) requestAnimationFrame(() => window.ragScrollToHit(ref, tries - 1));
      return;
    }
    box.scrollTop = Math.max(0, hit.offsetTop - (box.clientHeight - hit.offsetHeight) / 2);
    const r = box.getBoundingClientRect();
    if (r.top < 0 || r.top > window.innerHeight - 80) box.scrollIntoView({ block: "start" });
  };
})();
</script>
"""

SCROLL_JS = "() => { window.ragScrollToHit && window.ragScrollToHit(); }"
PENDING_REF_JS = "(ref) => window.ragPendingRef || ref"

CSS = """
.rag-header h1 { font-size: 1.5rem; margin: 0 0 .2rem 0; }
.rag-header p { margin: 0; color: var(--body-text-color-subdued); }

/* answers */
.rag-question { white-space: pre-wrap; }
.rag-answer-head { display: flex; align-items: center; gap: .6rem; margin-bottom: .35rem; }
.rag-badge { display: inline-block; padding: .1rem .6rem; border-radius: 999px; font-size: .8rem;
  font-weight: 600; line-height: 1.4; border: 1px solid transparent; cursor: help; }
.rag-badge-generate { background: #dcfce7; color: #14532d; border-color: #86efac; }
.rag-badge-generate::before { content: "\\2713\\00a0"; }
.rag-badge-extractive { background: #dbeafe; color: #1e3a8a; border-color: #93c5fd; }
.rag-badge-abstained { background: #fef3c7; color: #78350f; border-color: #fcd34d; }
.rag-badge-not-sure { background: #f3f4f6; color: #374151; border-color: #9ca3af; border-style: dashed; }
.rag-time { font-size: .75rem; color: var(--body-text-color-subdued); }
.rag-text { margin: 0 0 .3rem 0; line-height: 1.55; }
.rag-rewriting { margin: .3rem 0; font-size: .8rem; color: var(--body-text-color-subdued); }
.rag-caret { display: inline-block; width: .45em; height: 1em; margin-left: 2px; vertical-align: -2px;
  background: var(--body-text-color-subdued); animation: rag-blink 1s steps(1) infinite; }
@keyframes rag-blink { 50% { opacity: 0; } }
.rag-pending { color: var(--body-text-color-subdued); font-style: italic; }
.rag-note, .rag-query { font-size: .8rem; color: var(--body-text-color-subdued); margin: .15rem 0; }
.rag-query q { font-style: italic; }
a.rag-cite { font-weight: 700; text-decoration: none; color: var(--color-accent, #2563eb);
  padding: 0 .1rem; border-radius: 3px; cursor: pointer; }
a.rag-cite:hover, a.rag-cite:focus { background: #fde68a; color: #111827; }
.rag-error { color: #991b1b; background: #fef2f2; border: 1px solid #fecaca; border-radius: 6px;
  padding: .35rem .6rem; margin: .2rem 0; }
.rag-ok { color: #14532d; background: #f0fdf4; border: 1px solid #bbf7d0; border-radius: 6px;
  padding: .35rem .6rem; margin: .2rem 0; }

/* sources under each answer */
.rag-sources { margin-top: .6rem; border-top: 1px solid var(--border-color-primary); padding-top: .4rem; }
.rag-sources-title { font-size: .75rem; font-weight: 700; text-transform: uppercase; letter-spacing: .04em;
  color: var(--body-text-color-subdued); margin-bottom: .25rem; }
a.rag-source { display: block; text-decoration: none !important; color: inherit !important;
  border: 1px solid var(--border-color-primary); border-radius: 8px; padding: .4rem .6rem;
  margin: .3rem 0; background: var(--background-fill-primary); cursor: pointer; }
a.rag-source:hover, a.rag-source:focus { border-color: #60a5fa; background: var(--background-fill-secondary); }
.rag-source-head { display: flex; gap: .4rem; align-items: baseline; font-size: .85rem; }
.rag-n { font-weight: 700; color: var(--color-accent, #2563eb); }
.rag-source-title { font-weight: 600; flex: 1; }
.rag-confidence { font-size: .8rem; color: var(--body-text-color-subdued); margin-left: .5rem; }
.rag-quote { display: block; margin: .3rem 0; padding-left: .6rem; line-height: 1.45;
  border-left: 3px solid #fcd34d; }
.rag-file { display: block; font-size: .75rem; color: var(--body-text-color-subdued); }

/* the article viewer (its top clears the "Source" label) */
#rag-viewer { min-height: 200px; }
.rag-viewer, #rag-viewer > .rag-error, .rag-viewer-empty { margin-top: 1.6rem; }
.rag-viewer-empty { color: var(--body-text-color-subdued); padding: 1rem; border: 1px dashed
  var(--border-color-primary); border-radius: 8px; }
.rag-viewer-head { margin-bottom: .5rem; }
.rag-viewer-title { font-weight: 700; font-size: 1.05rem; }
.rag-article { position: relative; white-space: pre-wrap; line-height: 1.6; max-height: 62vh;
  overflow-y: auto; padding: .6rem .8rem; border: 1px solid var(--border-color-primary);
  border-radius: 8px; background: var(--background-fill-primary); }
mark.rag-hit { background: #fde047; color: #111827; padding: .05rem .1rem; border-radius: 3px;
  box-shadow: 0 0 0 2px #facc15; }

/* documents */
table.rag-docs { width: 100%; border-collapse: collapse; font-size: .9rem; border: none !important; }
table.rag-docs th, table.rag-docs td { text-align: left; padding: .35rem .5rem; border: none !important;
  border-bottom: 1px solid var(--border-color-primary) !important; vertical-align: top; }
table.rag-docs tr { border: none !important; }
table.rag-docs th { font-size: .8rem; color: var(--body-text-color-subdued); }
table.rag-docs .rag-num { text-align: right; white-space: nowrap; }
table.rag-docs td.rag-file { display: table-cell; font-size: .8rem; word-break: break-all; }
.rag-tag { font-size: .7rem; padding: 0 .4rem; border-radius: 999px; background: #e0e7ff; color: #3730a3; }
.rag-status { margin-top: .4rem; }
.rag-pending { border: 1px solid var(--border-color-primary); border-radius: 6px;
  padding: .35rem .6rem; margin: .2rem 0; display: flex; gap: .6rem; align-items: center; }
.rag-pending progress { flex: 1; min-width: 6rem; }
.rag-hint { font-size: .8rem; color: var(--body-text-color-subdued); align-self: center; }
.rag-align-end { align-self: flex-end !important; margin-bottom: .6rem; }

.dark .rag-badge-generate { background: #14532d; color: #dcfce7; }
.dark .rag-badge-extractive { background: #1e3a8a; color: #dbeafe; }
.dark .rag-badge-abstained { background: #78350f; color: #fef3c7; }
.dark .rag-badge-not-sure { background: #374151; color: #f3f4f6; }
.dark .rag-error { background: #450a0a; color: #fecaca; }
.dark .rag-ok { background: #052e16; color: #bbf7d0; }
"""
