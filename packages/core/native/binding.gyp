# The native addon of @loopwork/core, built by build-addon.mjs (node-gyp, offline, against this Node's headers).
# Linux only (accept4, pipe2, eventfd, sendfile(2), SO_DOMAIN): src/loopwork.h stops other systems with #error.
{
  "targets": [
    {
      "target_name": "loopwork",
      "sources": ["src/addon.c", "src/poll.c", "src/fd.c", "src/socket.c", "src/sendfile.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"]
    }
  ]
}
