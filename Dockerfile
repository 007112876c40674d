# One image for every Mebuku service (ingest, mobility worker, api, simulator, migrate).
FROM python:3.12-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    MEBUKU_LOG_FORMAT=json
WORKDIR /app
# A Japanese font so the council's PDF report embeds its glyphs.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-ipaexfont-gothic \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY core core
COPY ingest ingest
COPY mobility mobility
COPY fiveg fiveg
COPY api api
COPY grafana grafana
# Not editable: package data (core/data, fiveg/demo_trials, fare policies) ships in the wheel.
# Extras: the council's PDF report and `mebuku grafana push`; add `road` for OSM road graphs.
RUN pip install ".[report,grafana]" && useradd --system --uid 10001 mebuku
USER mebuku
ENTRYPOINT ["mebuku"]
CMD ["--help"]
