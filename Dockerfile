# One image for every service of the suite: `python -m services.<name>`.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so that code changes do not reinstall them.
COPY pyproject.toml README.md LICENSE ./
RUN mkdir -p services && touch services/__init__.py \
    && pip install . && pip uninstall -y venue-twin

COPY protos protos
COPY tools/genprotos.py tools/genprotos.py
RUN python tools/genprotos.py --out gen --no-stubs

COPY services services
COPY venues venues
# The simulated world, for playing a day inside the image:
#   docker run --rm -v venue-runs:/data IMAGE services.runner.cli run --no-live \
#     --data-dir /data --out /data/runs
COPY sim sim

ENV PYTHONPATH=/app:/app/gen \
    VENUE_LISTEN_HOST=0.0.0.0 \
    VENUE_DATA_DIR=/data \
    VENUE_FILE=/app/venues/lantern-bay-park.yaml

RUN useradd --uid 10001 --create-home venue && mkdir -p /data && chown venue /data
USER venue
VOLUME ["/data"]

ENTRYPOINT ["python", "-m"]
CMD ["services.identity"]
