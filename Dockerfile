# Image of the operator: `docker build -t caller-reputation-operator .` from the repository root.
# The build stage compiles the release binary; the final stage holds only that binary on a
# distroless base that carries the C runtime it links against, and runs it as user 65532.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin caller-reputation-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/caller-reputation-operator /usr/local/bin/caller-reputation-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/caller-reputation-operator", "run"]
