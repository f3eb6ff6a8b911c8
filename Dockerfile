# The image `loadgen k8s` manifests run: loadgen (the entrypoint) and backend, on a slim base.
#   docker build -t registry.example/sumstorm:1 .
# The build stage needs the workspace only (the tests' ../shared fixtures are not built in).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p loadgen -p backend \
 && cp target/release/loadgen target/release/backend /usr/local/bin/

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 sumstorm && mkdir /results && chown sumstorm /results
COPY --from=build /usr/local/bin/loadgen /usr/local/bin/backend /usr/local/bin/
USER sumstorm
WORKDIR /results
ENTRYPOINT ["/usr/local/bin/loadgen"]
