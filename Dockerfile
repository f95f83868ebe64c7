FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core ./core
COPY backend ./backend
COPY training ./training
RUN pip install --no-cache-dir -e ".[train]"
COPY frontend ./frontend
COPY models ./models
ENV D2A_HOST=0.0.0.0
EXPOSE 8000
CMD ["doodle2anime", "serve"]
