"""HTTP routes of transfers: the signed download link of a finished CSV export (R12).

No login: a browser opens the link, so the token in it carries everything (see
api.transfers.links). Anything but a genuine, unexpired link to an existing file answers
the same 404, whatever was wrong with it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from api.transfers import exporter, links

# The token is a credential: keep it out of caches and Referer headers.
_HEADERS = {
    "Cache-Control": "no-store, private",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


async def download_export(request: Request) -> Response:
    found = await exporter.file_for_download(
        request.path_params["job_id"], request.query_params.get("token")
    )
    if found is None:
        return PlainTextResponse("Not found", status_code=404, headers=_HEADERS)
    path, job = found
    when = job.finished_at or job.created_at
    return FileResponse(
        path,
        media_type="text/csv; charset=utf-8",
        filename=f"contacts-{when:%Y-%m-%d-%H%M%S}.csv",
        headers=_HEADERS,
    )


ROUTES = [Route(links.ROUTE, download_export, methods=["GET"])]
