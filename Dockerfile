# Two images from one file:
#   api:    the web app, the REST API and the random-face (sampling) worker: ONNX Runtime, no torch
#   worker: the training worker: the same, plus torch and the training code's other needs
# Both run as an unprivileged user.
FROM python:3.11-slim AS base
WORKDIR /app
RUN useradd --create-home --uid 10001 app
COPY pyproject.toml README.md ./
COPY core ./core
COPY backend ./backend
COPY training ./training

FROM base AS api
RUN pip install --no-cache-dir -e .
COPY frontend ./frontend
COPY models ./models
RUN mkdir -p /app/var && chown app:app /app/var
ENV D2A_HOST=0.0.0.0 D2A_EMBEDDED_WORKER=0
USER app
EXPOSE 8000
CMD ["doodle2anime", "serve"]

FROM base AS worker
RUN pip install --no-cache-dir -e ".[train]"
COPY models ./models
RUN mkdir -p /app/var && chown app:app /app/var
USER app
CMD ["doodle2anime", "worker", "--queues", "training"]
