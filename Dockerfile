# The qwen image: a static musl binary, a CA bundle and a non-root user on an empty base (about 4.6 MB).
#   docker build -t qwen .
#   echo "Summarize this" | docker run -i --rm -e OPENAI_API_KEY qwen --json
# scripts/static-root-test.sh proves the final stage without an engine: the same static binary, run by
# chroot as uid 10001 in a root holding only these files.

# --- build: a static binary (Rust on musl links statically by default) ---------------------------
FROM rust:1-alpine AS build
# gcc and musl-dev: ring compiles C and assembly; ca-certificates: the bundle the final stage ships.
RUN apk add --no-cache gcc musl-dev ca-certificates
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The image's own architecture: x86_64-unknown-linux-musl on amd64 (aarch64-... on arm64).
# The cache mounts keep the registry and build output between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(uname -m)-unknown-linux-musl" \
    && cargo build --release --locked --target "$target" --bin qwen \
    && cp "target/$target/release/qwen" /qwen \
    && echo 'qwen:x:10001:10001:qwen:/home/qwen:/sbin/nologin' > /passwd \
    && echo 'qwen:x:10001:' > /group

# --- final: the binary, the CA bundle, the user; nothing else ------------------------------------
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /passwd /etc/passwd
COPY --from=build /group /etc/group
COPY --from=build /qwen /usr/local/bin/qwen
# A place to mount a project (`-v "$PWD":/work`), where qwen finds its .qwen/.env.
WORKDIR /work
USER 10001:10001
ENTRYPOINT ["qwen"]
