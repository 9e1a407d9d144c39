/* The first thing the shipped binary runs: it unpacks the program once per build into a cache
 * folder, then becomes it (exec), so the pid a host spawned is the sidecar itself.
 *
 * Why not PyInstaller's own onefile mode: it unpacks the whole bundle (about 100 MB) into a new
 * temporary folder at every launch, which was most of the binary's time to ready, and it runs as
 * two processes, so a launcher killed with SIGKILL left the unpacked files behind.
 *
 * build/pack_binary.py appends the payload to this program and ends the file with a trailer:
 *   records: u8 kind ('d' folder, 'f' file, 'l' symlink), u16 path length, path (relative, no
 *            "..": the packer writes them), u32 mode, u64 size, then size bytes (a file's
 *            contents or a symlink's target)
 *   trailer: "DSBUNDL1", u64 payload offset, u64 payload size, 32-byte bundle name (NUL-padded)
 * all little-endian. The cache folder is binary/<bundle name> in the project's cache (as for the
 * synthetic models): $DIFFUSION_SIDECAR_CACHE, else $XDG_CACHE_HOME/diffusion-sidecar, else
 * ~/.cache/diffusion-sidecar. A folder counts only once it holds the
 * COMPLETE marker: unpacking goes to a private temporary folder first, renamed into place at the
 * end, so an interrupted or concurrent launch never runs half a bundle.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAGIC "DSBUNDL1"
#define NAME_BYTES 32
#define TRAILER_BYTES (8 + 8 + 8 + NAME_BYTES)
#define PROGRAM "diffusion-sidecar"
#define COMPLETE "COMPLETE"
#define STAGING_PREFIX ".unpacking-"
/* Another build's folder is removed once unused this long: upgrades do not pile up, and an older
 * version a host still runs now and then keeps its files. */
#define UNUSED_SECONDS (7 * 24 * 3600)

static const char *self_path;

static void die(const char *what, const char *path) {
    fprintf(stderr, "diffusion-sidecar: %s %s: %s\n", what, path, strerror(errno));
    exit(127);
}

/* out = a/b, or the launch ends: a truncated path could name another file. */
static void join(char out[PATH_MAX], const char *a, const char *b) {
    if (snprintf(out, PATH_MAX, "%s/%s", a, b) >= PATH_MAX) {
        errno = ENAMETOOLONG;
        die("cannot use the path", a);
    }
}

static uint64_t le64(const unsigned char *p) {
    uint64_t value = 0;
    for (int i = 7; i >= 0; i--) value = (value << 8) | p[i];
    return value;
}

static void read_exactly(int fd, void *buffer, size_t size, off_t *offset) {
    unsigned char *out = buffer;
    while (size > 0) {
        ssize_t got = pread(fd, out, size, *offset);
        if (got <= 0) {
            if (got < 0 && errno == EINTR) continue;
            if (got == 0) errno = EIO;
            die("cannot read its own bundle from", self_path);
        }
        out += got, size -= (size_t)got, *offset += got;
    }
}

static void copy_out(int from, off_t *offset, int to, uint64_t size, const char *path) {
    while (size > 0) {
        /* copy_file_range keeps the bytes in the kernel; read/write where it is not supported */
        ssize_t done = copy_file_range(from, offset, to, NULL, size, 0);
        if (done < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
            static unsigned char chunk[1 << 20];
            size_t part = size < sizeof chunk ? (size_t)size : sizeof chunk;
            read_exactly(from, chunk, part, offset);
            for (size_t written = 0; written < part;) {
                ssize_t w = write(to, chunk + written, part - written);
                if (w < 0 && errno != EINTR) die("cannot write", path);
                if (w > 0) written += (size_t)w;
            }
            done = (ssize_t)part;
        } else if (done <= 0) {
            if (done < 0 && errno == EINTR) continue;
            if (done == 0) errno = EIO;
            die("cannot write", path);
        }
        size -= (uint64_t)done;
    }
}

/* Write every record into `folder` (a fresh, private folder). */
static void unpack(int self, off_t offset, uint64_t size, const char *folder) {
    off_t end = offset + (off_t)size;
    char path[PATH_MAX], relative[PATH_MAX];
    while (offset < end) {
        unsigned char head[3];
        read_exactly(self, head, 3, &offset);
        unsigned length = head[1] | (unsigned)head[2] << 8;
        if (length == 0 || length >= sizeof relative) {
            errno = EINVAL;
            die("found a corrupt record in", self_path);
        }
        read_exactly(self, relative, length, &offset);
        relative[length] = '\0';
        unsigned char meta[12];
        read_exactly(self, meta, 12, &offset);
        mode_t mode = (mode_t)(meta[0] | meta[1] << 8 | meta[2] << 16 | (unsigned)meta[3] << 24) & 0777;
        uint64_t bytes = le64(meta + 4);
        join(path, folder, relative);
        if (head[0] == 'd') {
            if (mkdir(path, 0700) != 0) die("cannot create", path);
        } else if (head[0] == 'f') {
            int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 0700);
            if (out < 0) die("cannot create", path);
            copy_out(self, &offset, out, bytes, path);
            if (close(out) != 0) die("cannot write", path);
        } else if (head[0] == 'l') {
            char target[PATH_MAX];
            if (bytes >= sizeof target) {
                errno = ENAMETOOLONG;
                die("cannot unpack", relative);
            }
            read_exactly(self, target, (size_t)bytes, &offset);
            target[bytes] = '\0';
            if (symlink(target, path) != 0) die("cannot create", path);
        } else {
            errno = EINVAL;
            die("found a corrupt record in", self_path);
        }
    }
}

static int remove_entry(const char *path, const struct stat *info, int type, struct FTW *walk) {
    (void)info, (void)type, (void)walk;
    remove(path);
    return 0;
}

static void remove_tree(const char *path) { nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* Each launch touches its build's marker; a new build removes the others left unused (and
 * staging folders of launches that died while unpacking). */
static void prune(const char *root, const char *keep) {
    DIR *folder = opendir(root);
    if (!folder) return;
    time_t cutoff = time(NULL) - UNUSED_SECONDS;
    struct dirent *entry;
    char path[PATH_MAX], marker[PATH_MAX];
    while ((entry = readdir(folder))) {
        const char *name = entry->d_name;
        if (!strcmp(name, ".") || !strcmp(name, "..") || !strcmp(name, keep)) continue;
        join(path, root, name);
        int staging = strncmp(name, STAGING_PREFIX, strlen(STAGING_PREFIX)) == 0;
        if (staging) {
            strcpy(marker, path);
        } else {
            join(marker, path, COMPLETE);
        }
        struct stat info;
        if (stat(marker, &info) == 0 && info.st_mtime < cutoff) remove_tree(path);
    }
    closedir(folder);
}

/* mkdir -p with private permissions: the folder holds code this user will run. */
static void make_folders(char *path) {
    for (char *slash = path + 1; *slash; slash++) {
        if (*slash != '/') continue;
        *slash = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) die("cannot create", path);
        *slash = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST) die("cannot create", path);
}

static void cache_root(char *root, size_t size) {
    const char *chosen = getenv("DIFFUSION_SIDECAR_CACHE");
    int written;
    if (chosen && *chosen) {
        written = snprintf(root, size, "%s/binary", chosen);
    } else if ((chosen = getenv("XDG_CACHE_HOME")) && *chosen == '/') {
        written = snprintf(root, size, "%s/diffusion-sidecar/binary", chosen);
    } else if ((chosen = getenv("HOME")) && *chosen == '/') {
        written = snprintf(root, size, "%s/.cache/diffusion-sidecar/binary", chosen);
    } else {
        errno = ENOENT;
        die("has nowhere to unpack: set HOME or DIFFUSION_SIDECAR_CACHE", "");
    }
    if (written >= (int)size) {
        errno = ENAMETOOLONG;
        die("cannot use the cache folder", chosen);
    }
}

int main(int argc, char **argv) {
    (void)argc;
    static char self[PATH_MAX];
    ssize_t length = readlink("/proc/self/exe", self, sizeof self - 1);
    if (length < 0) die("cannot find itself through", "/proc/self/exe");
    self[length] = '\0';
    self_path = self;

    int fd = open(self, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("cannot open", self);
    off_t file_size = lseek(fd, 0, SEEK_END);
    if (file_size < TRAILER_BYTES) die("has no bundle in", self);
    unsigned char trailer[TRAILER_BYTES];
    off_t at = file_size - TRAILER_BYTES;
    read_exactly(fd, trailer, TRAILER_BYTES, &at);
    if (memcmp(trailer, MAGIC, 8) != 0) {
        errno = EINVAL;
        die("has no bundle in", self);
    }
    char name[NAME_BYTES + 1] = {0};
    memcpy(name, trailer + 24, NAME_BYTES);

    char root[PATH_MAX], folder[PATH_MAX], program[PATH_MAX], complete[PATH_MAX];
    cache_root(root, sizeof root);
    join(folder, root, name);
    join(program, folder, PROGRAM);
    join(complete, folder, COMPLETE);

    if (access(complete, F_OK) != 0) {
        make_folders(root);
        char staging[PATH_MAX];
        join(staging, root, STAGING_PREFIX "XXXXXX");
        if (!mkdtemp(staging)) die("cannot create a folder in", root);
        unpack(fd, (off_t)le64(trailer + 8), le64(trailer + 16), staging);
        char marker[PATH_MAX];
        join(marker, staging, COMPLETE);
        int done = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (done < 0 || close(done) != 0) die("cannot create", marker);
        if (rename(staging, folder) != 0) {
            /* Another launch finished first (the folder exists), or a stale incomplete one is in
             * the way: either way, use a complete folder or replace the incomplete one. */
            if (access(complete, F_OK) != 0) {
                remove_tree(folder);
                if (rename(staging, folder) != 0) die("cannot move its files into", folder);
            } else {
                remove_tree(staging);
            }
        }
        prune(root, name);
    } else {
        utimensat(AT_FDCWD, complete, NULL, 0); /* in use: see prune() */
    }
    close(fd);
    /* The sidecar reports where it came from (`selftest`, bug reports). */
    setenv("DIFFUSION_SIDECAR_BINARY", self, 1);
    execv(program, argv);
    die("cannot start", program);
}
