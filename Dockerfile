# The bucketfs image: one static binary, for the Kubernetes CSI driver
# (deploy/) and anything else that runs bucketfs in a container.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t bucketfs:dev .
#
# The final image holds exactly:
#   /usr/local/bin/bucketfs              static (CGO_ENABLED=0), version stamped
#   /etc/ssl/certs/ca-certificates.crt   CA certificates, for HTTPS to S3 and STS
# and nothing else: no shell, no libc, no package manager, nothing fetched
# at run time. It has no fusermount3 either: the CSI driver runs as root and
# mounts and unmounts with the mount(2) and umount(2) system calls itself;
# fusermount3 is only needed by users who are not root.

# The builder: Go of the version go.mod names.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The build context has no .git (see .dockerignore): the version comes in
# as a build argument; without one scripts/build says "dev".
ARG VERSION=
RUN scripts/build -o /out/bucketfs ${VERSION:+--version "$VERSION"} && /out/bucketfs version

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/bucketfs /usr/local/bin/bucketfs
ENTRYPOINT ["/usr/local/bin/bucketfs"]
CMD ["csi"]
