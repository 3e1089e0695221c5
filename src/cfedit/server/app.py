"""The web editor: a JSON API over one trained run and the one page that uses it (``cfedit serve``).

:func:`create_app` builds a FastAPI application from a :class:`~cfedit.runs.Run` (the editor, with its
world when the run belongs to one). Everything it holds is built once and only read by requests: the
editor (inference only, no per-request state), the bounds of queries (the run's
:class:`~cfedit.runs.QueryBounds`, memoised under a lock), the example images, the page's three files (read
from the package into memory, so no request names a file). Each edit is
:func:`cfedit.evaluation.certificate.certify`: the edits and their certificate. A continuous factor is described
by its interval (the page's slider), set by a number, and certified over its world's declared bins.

Bad input never yields a 5xx: a refusal is ``{"detail": "one line"}`` with 400 (bad values, unknown
factors, unreadable query, a Host header that does not name this server), 404 (unknown example), 408 (a body
that does not arrive in time), 413 (a body or image over the limits), 415 (not a PNG or JPEG) or 422 (a
request that does not match the schema); 503 with ``Retry-After`` says the server holds as many uploads as
it takes at once (:mod:`cfedit.server.limits`). OpenAPI at ``/openapi.json``, docs at ``/docs``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import numpy as np
from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, StrictFloat, StrictInt, StrictStr

from cfedit.core.config import check_ranges
from cfedit.core.domains import Domains
from cfedit.core.intervention import Intervention
from cfedit.editors.base import EditItem, Editor
from cfedit.errors import CfeditError
from cfedit.evaluation.certificate import certify, certify_each, label_reader
from cfedit.runs import Run
from cfedit.server.batching import Batcher
from cfedit.server.images import MAX_UPLOAD_BYTES, ImageRefused, decode, from_base64, png_base64, read_file
from cfedit.server.limits import BODY_TIMEOUT, LOOPBACK_NAMES, MAX_BODY_BYTES, UPLOAD_BUDGET, add_limits
from cfedit.worlds import World

MAX_K = 64  # edit samples of one request
MAX_QUERY_CHARS = 1000
log = logging.getLogger("cfedit")


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    n_examples: int = 12  # example images offered (from the world's evaluation pool or the --examples folder)
    seed: int = 0  # which units of the world's evaluation pool are the examples
    parallel: int = 0  # edits computed at once (others wait their turn); 0: one per core, so threads do not thrash
    allowed_hosts: tuple[str, ...] = LOOPBACK_NAMES  # names the Host header may give, besides IP addresses ("*": any)
    body_timeout: float = BODY_TIMEOUT  # seconds for a whole request body to arrive (else 408)
    upload_budget: int = UPLOAD_BUDGET  # bytes of request bodies held at once, all connections together (else 503)
    batch_ms: float = 0.0  # gather concurrent edits for up to this many ms and run them as one batch (0: each alone)
    batch_max: int = 16  # edit requests in one batch at most

    def __post_init__(self) -> None:
        check_ranges(self, {"n_examples": (int, 0, 256), "seed": (int, 0, 2**31 - 1), "parallel": (int, 0, 1024),
                            "body_timeout": (float, 0.01, 3600), "upload_budget": (int, MAX_BODY_BYTES, 1 << 40),
                            "batch_ms": (float, 0, 1000), "batch_max": (int, 1, 1024)})
        if isinstance(self.allowed_hosts, str) or not all(isinstance(h, str) and h for h in self.allowed_hosts):
            raise CfeditError(f"ServeConfig.allowed_hosts must be a tuple of host names, got {str(self.allowed_hosts)[:80]!r}")


# ---------------------------------------------------------------------------------------------- schemas
# Requests take strict types: ``"k": true``, ``1.0`` or ``"8"`` is a 422, not the number 1 or 8.
Name = Annotated[StrictStr, Field(min_length=1, max_length=100)]
Value = Union[Name, StrictFloat, StrictInt]  # a value name, or a number for a continuous factor (only)
_VALUE_BRANCHES = ("constrained-str", "str", "float", "int")  # how the framework names Value's branches in an error's location


class Error(BaseModel):
    detail: str = Field(description="what was wrong, in one line")


class EditRequest(BaseModel):
    image: Optional[StrictStr] = Field(None, max_length=MAX_BODY_BYTES, description="a PNG or JPEG file, base64 (a data: URL prefix "
                                 "is allowed); resized to the run's image size. Give this or `example`")
    example: Optional[StrictInt] = Field(None, ge=0, le=10_000, description="the id of an example image (GET /api/examples)")
    do: dict[Name, Value] = Field(min_length=1, max_length=32, description='the intervention by factor: value names of categorical '
                                  'factors, numbers in their interval for continuous ones: {"C": "green"}, {"T": 4.0}')
    k: StrictInt = Field(8, ge=1, le=MAX_K, description="counterfactual samples")
    seed: StrictInt = Field(0, ge=0, le=2**31 - 1, description="random seed: the same seed gives the same edits")
    labels: Optional[dict[Name, Value]] = Field(None, max_length=32, description="the image's factors (all of them), "
                                                "used instead of the labeller's reading (value names; numbers for continuous factors)")


class Edit(BaseModel):
    png: str = Field(description="the edited image, base64 PNG")
    factors: dict[str, str] = Field(description="the factors the editor generated the image from (v')")
    reading: dict[str, str] = Field(description="the factors the labeller reads off the edited image")


class Factual(BaseModel):
    png: str
    reading: dict[str, str] = Field(description="v: the labeller's reading of the image, or the labels given")
    resized_from: Optional[list[int]] = Field(None, description="[width, height] of an upload that was resized")


class CertificateRow(BaseModel):
    query: str
    factor: str
    value: str
    kept: bool = Field(description="the value is the factor's factual one")
    lower: float
    upper: float
    identified: bool
    certified: bool = Field(description="the bounds are proven optimal (else valid, maybe loose)")
    estimate: Optional[float] = Field(description="share of the k edits read with this value")
    estimate_lower: float
    estimate_upper: float
    n: int
    consistent: bool = Field(description="the estimate's 95% interval meets the bounds")
    truth: Optional[float] = None


class Certificate(BaseModel):
    do: dict[str, str]
    factual: dict[str, str]
    k: int
    distributions: dict[str, dict[str, float]] = Field(description="per factor, the share of the k edits read with each value")
    queries: list[CertificateRow]
    omitted: int = Field(description="queries not listed: no edit shows their value and their lower bound is 0 (consistent)")
    p_v: str = Field(description="where the P(V) of the bounds comes from")
    note: str
    binning: str = Field("", description="continuous factors: the certificate is over their declared bins, this says how (empty: exact)")
    binned_do: dict[str, str] = Field(default_factory=dict, description="each continuous value set, as the bin the binned action sets")
    binned_factual: dict[str, str] = Field(default_factory=dict, description="each continuous factual value's bin (the evidence)")


class EditResponse(BaseModel):
    factual: Factual
    edits: list[Edit]
    certificate: Certificate


class BoundsRequest(BaseModel):
    query: StrictStr = Field(min_length=1, max_length=MAX_QUERY_CHARS, description='e.g. "P(B[C=green]=1 | D=7, C=red, B=0)"')


class BoundsResponse(BaseModel):
    query: str
    lower: float
    upper: float
    identified: bool
    certified: bool
    method: str
    truth: Optional[float] = Field(None, description="the world's true value (runs of a world only)")
    p_v: str


class Example(BaseModel):
    id: int
    png: str
    reading: dict[str, str] = Field(description="the labeller's reading")


class Examples(BaseModel):
    source: str
    examples: list[Example]


class Graph(BaseModel):
    nodes: list[str]
    directed: list[list[str]] = Field(description="[parent, child] pairs")
    bidirected: list[list[str]] = Field(description="pairs sharing a hidden cause")


class ContinuousFactor(BaseModel):
    kind: Literal["continuous"] = "continuous"
    low: float = Field(description="the interval's lower end")
    high: float = Field(description="the interval's upper end")
    step: float = Field(description="a slider step for the interval (a power of ten, about a hundredth of it)")
    bins: list[float] = Field(description="the declared inner bin edges (the certificate is over these bins)")


class ModelInfo(BaseModel):
    editor: str
    graph: Graph
    factors: dict[str, Union[list[str], ContinuousFactor]] = Field(description="categorical factors: their value names; continuous "
                                                                   "ones: their interval")
    image_shape: list[int]
    training: dict = Field(description="the run's training summary and settings")
    world: Optional[str]
    queries: list[str] = Field(description="the world's documented queries (over the declared bins for continuous factors)")
    p_v: str
    limits: dict[str, int]
    run: str = Field("", description="this run's name where several are served (each under /w/NAME/)")
    runs: list[str] = Field(default_factory=list, description="every run served, for the page's selector (empty: one run)")


REFUSALS = {status: {"model": Error} for status in (400, 404, 408, 413, 415, 422, 503)}


# ---------------------------------------------------------------------------------------------- the app
def _examples(editor: Editor, world: World | None, folder: Path | None, config: ServeConfig) -> tuple[str, np.ndarray]:
    if folder is not None:
        files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg") and p.is_file())
        if not files:
            raise CfeditError(f"example folder {folder} holds no PNG or JPEG images")
        imgs = [read_file(p, editor.image_shape) for p in files[:config.n_examples]]
        return f"folder {Path(folder).name}", np.stack(imgs)
    if world is not None and config.n_examples:
        a = world.ascm("eval", oracle=False)
        return f"world {world.name} (held-out evaluation pool)", a.factual(a.units(config.n_examples, config.seed))
    return "none (upload an image)", np.zeros((0, *editor.image_shape), np.float32)


def _factors(dom: Domains) -> dict[str, list[str] | ContinuousFactor]:
    """The factors as the page reads them: value names, or a continuous factor's interval and slider step."""
    out: dict[str, list[str] | ContinuousFactor] = {}
    for f in dom.names:
        if dom.is_continuous(f):
            c = dom.continuous(f)
            out[f] = ContinuousFactor(low=c.lo, high=c.hi, step=10.0 ** np.floor(np.log10((c.hi - c.lo) / 100)), bins=list(c.bins))
        else:
            out[f] = list(dom.values(f))
    return out


def _values(dom: Domains, given: Mapping[str, object] | None, what: str) -> Mapping[str, object] | None:
    """Refuse a number for a categorical factor (a value name is asked for: a number would be taken as a code);
    everything else is checked once, by :meth:`cfedit.core.intervention.Intervention.of` and the editor's labels."""
    for f, x in (given or {}).items():
        if not isinstance(x, str) and f in dom and not dom.is_continuous(f):
            raise CfeditError(f"{what}: {f} is categorical: give one of its value names as text "
                              f"({', '.join(dom.values(f))[:200]}), not the number {x!r}"[:300])
    return given


def _static(name: str) -> str:
    return resources.files("cfedit.server").joinpath("static", name).read_text(encoding="utf-8")


def create_app(run: Run, examples: Path | None = None, config: ServeConfig = ServeConfig(), *, menu: tuple[str, ...] = (),
               limits: bool = True) -> FastAPI:
    """The application for one run (its world, when it belongs to one, gives exact bounds, truths,
    documented queries and examples; ``examples``: a folder of example images instead). ``menu`` names every run
    served beside it (the page's selector; :func:`create_multi_app`); ``limits``: put the request limits in front
    (off for an app mounted inside one that has them)."""
    editor, world, bounds = run.editor, run.world, run.bounds
    dom = editor.domains
    source, ex_images = _examples(editor, world, examples, config)
    read = label_reader(editor)
    names = lambda codes: {f: dom.decode(f, c) for f, c in codes.items()}  # noqa: E731  (a continuous value as a number)
    # per example, once: its PNG and the labeller's reading of it, read alone as an edit of it reads it (the reading
    # the page shows; with categorical factors only, an edit of an example is given it as its labels: the same v,
    # the same edits, no labeller pass per request)
    ex_png = [png_base64(x) for x in ex_images]
    ex_read = [read(x[None]) for x in ex_images]
    ex_codes = [{f: int(a[0]) for f, a in r.items()} for r in ex_read] if not dom.continuous_names else [None] * len(ex_images)
    example_list = Examples(source=source, examples=[
        Example(id=i, png=ex_png[i], reading=names({f: a[0] for f, a in ex_read[i].items()})) for i in range(len(ex_images))])
    graph = bounds.graph
    info = ModelInfo(
        editor=editor.name, graph=Graph(nodes=list(graph.nodes), directed=[list(e) for e in graph.directed],
                                        bidirected=[list(e) for e in graph.bidirected]),
        factors=_factors(dom), image_shape=list(editor.image_shape),
        training=editor.training_record.to_json(),
        world=world.name if world else None, queries=_queries(world, bounds), p_v=bounds.source,
        limits={"max_k": MAX_K, "max_upload_bytes": MAX_UPLOAD_BYTES, "max_query_chars": MAX_QUERY_CHARS},
        run=run.name if menu else "", runs=list(menu))
    page = {n: _static(n) for n in ("index.html", "app.js", "style.css")}
    workers = config.parallel or os.cpu_count() or 1
    turns = threading.BoundedSemaphore(workers)
    batcher = Batcher(lambda items: certify_each(editor, items, bounds), window=config.batch_ms / 1000, max_items=config.batch_max,
                      workers=workers) if config.batch_ms > 0 else None

    app = FastAPI(title="cfedit web editor", version="1", description=__doc__.split("\n\n")[0])
    app.state.batcher = batcher

    @app.exception_handler(CfeditError)
    async def _refused(request: Request, e: CfeditError) -> JSONResponse:
        status = e.status if isinstance(e, ImageRefused) else 400
        return JSONResponse({"detail": str(e)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {"loc": (), "msg": "invalid request"}
        loc, msg = [str(x) for x in first.get("loc", ()) if x != "body"], first.get("msg", "invalid")
        if len(loc) == 3 and loc[0] in ("do", "labels") and loc[2] in _VALUE_BRANCHES:  # a Value: text or a number, neither fits
            loc = loc[:2]
            if first.get("type") == "string_type":
                msg = "give a value name (text), or a number for a continuous factor"
        where = ".".join(loc)
        return JSONResponse({"detail": f"{where + ': ' if where else ''}{msg}"[:300]}, status_code=422)

    if limits:
        add_limits(app, names=config.allowed_hosts, timeout=config.body_timeout, budget=config.upload_budget)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page["index.html"])

    @app.get("/app.js", include_in_schema=False)
    def script() -> Response:
        return Response(page["app.js"], media_type="text/javascript")

    @app.get("/style.css", include_in_schema=False)
    def style() -> Response:
        return Response(page["style.css"], media_type="text/css")

    @app.get("/api/model", response_model=ModelInfo)
    def model() -> ModelInfo:
        """The diagram, factors and values, image shape, training summary and the world's documented queries."""
        return info

    @app.get("/api/examples", response_model=Examples)
    def list_examples() -> Examples:
        """Held-out example images with the labeller's reading."""
        return example_list

    @app.post("/api/edit", response_model=EditResponse, responses=REFUSALS)
    def edit(req: Annotated[EditRequest, Body()]) -> EditResponse:
        """Edit an image (upload or example) under one or several interventions: the k edits, their factors
        and readings, each factor's counterfactual distribution and the certificate of the implied queries."""
        if (req.image is None) == (req.example is None):
            raise CfeditError("give either an image (base64 PNG or JPEG) or the id of an example")
        resized, labels, png = None, _values(dom, req.labels, "labels"), None
        if req.example is not None:
            if req.example >= len(ex_images):
                return JSONResponse({"detail": f"no example {req.example}; there are {len(ex_images)}"}, status_code=404)
            x, png = ex_images[req.example], ex_png[req.example]
            labels = labels if labels is not None else ex_codes[req.example]
        else:
            x, resized = decode(from_base64(req.image), editor.image_shape)
        if batcher is not None:
            do = Intervention.of(dom, _values(dom, req.do, "do"))  # refused here, in the request's own thread, not in a batch
            if labels is not None:
                editor.encode_labels({f: [c] for f, c in labels.items()}, 1)
            cert = batcher.submit(EditItem(x, do, req.k, req.seed, labels))
        else:
            with turns:
                cert = certify(editor, x, _values(dom, req.do, "do"), req.k, req.seed, bounds, labels=labels)
        r = cert.result
        edits = [Edit(png=png_base64(r.images[0, j]), factors=names({f: a[0, j] for f, a in r.factors.items()}),
                      reading=names({f: a[j] for f, a in cert.readings.items()})) for j in range(req.k)]
        return EditResponse(factual=Factual(png=png or png_base64(x), reading=names(cert.factual), resized_from=resized),
                            edits=edits, certificate=Certificate(**cert.to_dict(dom)))

    @app.post("/api/bounds", response_model=BoundsResponse, responses=REFUSALS)
    def query_bounds(req: Annotated[BoundsRequest, Body()]) -> BoundsResponse:
        """Optimal bounds of a counterfactual query over the run's diagram and P(V) (over the declared bins of
        continuous factors, value names such as T=2-2.5); the truth for a world's run."""
        from cfedit.core.query import parse_query

        q = parse_query(req.query, bounds.domains)
        b = bounds(q)
        return BoundsResponse(query=q.format(bounds.domains), lower=b.lower, upper=b.upper, identified=b.identified,
                              certified=b.certified, method=b.method, truth=bounds.truth(q), p_v=bounds.source)

    app.openapi = lambda: app.openapi_schema or _schema(app, dom, len(ex_images))
    return app


def _queries(world: World | None, bounds) -> list[str]:
    """The queries the page offers for the bounds box: the world's documented ones, over the declared bins
    when the factors are continuous (the queries the bounds answer)."""
    if world is None:
        return []
    if bounds.binned:
        return list(world.binned.queries) if world.binned is not None and not bounds.unavailable else []
    return list(world.queries)


def _schema(app: FastAPI, dom, n_examples: int) -> dict:
    """The OpenAPI schema, with this run's factor names and values (and example ids) in the edit request:
    documentation for clients, and what the schema fuzzer draws from."""
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    props = schema["components"]["schemas"]["EditRequest"]["properties"]
    for key in ("do", "labels"):
        for branch in [props[key], *props[key].get("anyOf", [])]:
            if branch.get("type") == "object":  # each factor its values: names, or a number in a continuous factor's interval
                branch["propertyNames"] = {"enum": list(dom.names)}
                branch["properties"] = {f: ({"type": "number", "minimum": dom.continuous(f).lo, "maximum": dom.continuous(f).hi}
                                            if dom.is_continuous(f) else {"type": "string", "enum": list(dom.values(f))})
                                        for f in dom.names}
                branch["additionalProperties"] = False
    for branch in props["example"].get("anyOf", []):
        if branch.get("type") == "integer":
            branch["maximum"] = max(0, n_examples - 1)
    app.openapi_schema = schema
    return schema


def create_multi_app(runs: Mapping[str, Run], config: ServeConfig = ServeConfig()) -> FastAPI:
    """Several runs side by side (``cfedit serve`` with no run: every shipped editor): each run's application
    under ``/w/NAME/`` with a selector on its page, ``/`` leading to the first. The request limits hold for
    all of them together."""
    if not runs:
        raise CfeditError("no run to serve")
    from fastapi.responses import RedirectResponse

    app = FastAPI(title="cfedit web editor", version="1", description="Several runs, each under /w/NAME/ (its API at /w/NAME/docs).")
    add_limits(app, names=config.allowed_hosts, timeout=config.body_timeout, budget=config.upload_budget)
    names = tuple(runs)

    @app.get("/", include_in_schema=False)
    def first() -> RedirectResponse:
        return RedirectResponse(f"/w/{names[0]}/")

    @app.get("/api/runs", include_in_schema=True)
    def list_runs() -> dict[str, list[str]]:
        """The runs served, each under /w/NAME/."""
        return {"runs": list(names)}

    for name, run in runs.items():
        app.add_api_route(f"/w/{name}", lambda name=name: RedirectResponse(f"/w/{name}/"), include_in_schema=False)
        app.mount(f"/w/{name}", create_app(run, None, config, menu=names, limits=False))
    return app
