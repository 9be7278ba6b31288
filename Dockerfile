# syntax=docker/dockerfile:1
# Baogong images. `docker build .` builds the application (the last stage, "app");
# `docker build --target dashboard .` builds the RQ dashboard used by docker-compose.yml.

# --- RQ dashboard: its own small image, so rq-dashboard stays out of requirements.txt.
# rq-dashboard 0.9.0 imports six without declaring it; rq and redis match requirements.txt.
FROM python:3.11-slim AS dashboard
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
RUN pip install \
        rq-dashboard==0.9.0 six==1.17.0 rq==2.6.1 redis==6.4.0 \
        Redis-Sentinel-Url==1.0.1 arrow==1.4.0 Flask==3.1.3 Werkzeug==3.1.9 \
        click==8.5.1 Jinja2==3.1.6 MarkupSafe==3.0.4 itsdangerous==2.2.0 blinker==1.9.0 \
        croniter==7.0.0 python-dateutil==4.0.0 tzdata==2026.6
USER nobody
EXPOSE 9181
ENTRYPOINT ["rq-dashboard"]
CMD ["--bind", "0.0.0.0", "--port", "9181"]

# --- The application: web (gunicorn), workers, scheduler and migrations share this image.
FROM python:3.11-slim AS app
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FLASK_APP=app
WORKDIR /app
RUN groupadd --system --gid 10001 baogong \
    && useradd --system --uid 10001 --gid baogong --home-dir /app --shell /usr/sbin/nologin baogong

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
# The compiled catalog is not in git; instance/ and out/ are the only places the app writes.
RUN pybabel compile -d app/translations -D messages \
    && mkdir -p instance out \
    && chown baogong:baogong instance out

USER baogong
EXPOSE 5000
# Extra gunicorn flags (timeouts, access log) can be given through GUNICORN_CMD_ARGS.
CMD ["gunicorn", "-b", "0.0.0.0:5000", "-w", "4", "app:create_app()"]
