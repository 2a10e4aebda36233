using System.Buffers;
using System.Formats.Tar;
using System.Globalization;
using System.Text;
using CriRuntime.Native;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Win32.SafeHandles;

namespace CriRuntime.Storage;

/// <summary>What applying one layer produced.</summary>
/// <param name="TotalBytes">Bytes of regular-file content written (files replaced later in the same tar are subtracted).</param>
/// <param name="Inodes">Inodes created: files, directories (also implicit parents), symlinks, devices, whiteouts; not hardlinks.</param>
/// <param name="Skipped">Whether anything in the tar was not reproduced (unsupported entry types, xattrs the file system refused).</param>
public sealed record UnpackResult(long TotalBytes, long Inodes, bool Skipped);

/// <summary>
/// Applies an OCI layer tar as an overlay2 "diff" directory.
/// <para>
/// Names are cleaned lexically: a leading '/' is stripped (as docker does) and '.' / '..' resolved;
/// a name whose '..' climbs above the layer root is refused (docker would clamp it at the root; a
/// layer that tries this is broken or hostile). Every path is then walked one component at a time
/// with openat(O_NOFOLLOW|O_DIRECTORY) from an fd on the target, and all changes are made relative
/// to the parent's fd (mkdirat, mknodat, symlinkat, linkat, fchownat/utimensat with
/// AT_SYMLINK_NOFOLLOW, fsetxattr), so a symlink stored by the layer is never followed: an entry
/// below a symlink is refused with <see cref="UnsafeLayerException"/>.
/// </para>
/// <para>
/// Whiteouts use the overlay format: <c>.wh.NAME</c> becomes a 0:0 character device NAME,
/// <c>.wh..wh..opq</c> sets trusted.overlay.opaque=y on its directory, other <c>.wh..wh.*</c>
/// (AUFS metadata) are ignored. A later entry for a path replaces the earlier one, except that a
/// directory over a directory merges (docker's rule). Hardlinks must point at an entry already
/// extracted from this layer; their own header metadata is not applied (it would rewrite the
/// shared inode). Directory mtimes are set last, after their contents exist.
/// </para>
/// </summary>
public sealed class LayerUnpacker(ILogger? logger = null)
{
    internal const string SchilyXattrPrefix = "SCHILY.xattr.";
    internal const string LibarchiveXattrPrefix = "LIBARCHIVE.xattr.";
    private const string WhiteoutPrefix = ".wh.";
    private const string WhiteoutMetaPrefix = ".wh..wh.";
    private const string OpaqueMarker = ".wh..wh..opq";

    private readonly ILogger logger = logger ?? NullLogger.Instance;

    /// <summary>Entries accepted in one layer (lowered by tests).</summary>
    internal long MaxEntries { get; init; } = LayerLimits.MaxEntries;

    /// <summary>
    /// Unpacks <paramref name="tar"/> (already decompressed) into <paramref name="targetDir"/>, created
    /// if missing, then reads the stream to its end so a digest computed over it covers every byte.
    /// A tar without its end-of-archive blocks is accepted and a truncated one refused (see
    /// <see cref="PaxXattrFilter"/>).
    /// On failure the directory is left partially written: the caller deletes it.
    /// </summary>
    public async Task<UnpackResult> UnpackAsync(Stream tar, string targetDir, CancellationToken ct)
    {
        targetDir = Path.GetFullPath(targetDir);
        Directory.CreateDirectory(targetDir);
        using var session = new Session(Files.OpenDirectory(targetDir), logger);
        var filter = new PaxXattrFilter(tar);
        long entries = 0;
        await using (var reader = new TarReader(filter, leaveOpen: true))
        {
            while (true)
            {
                ct.ThrowIfCancellationRequested();
                var entry = await reader.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false);
                if (entry is null) break;
                LayerLimits.CheckEntryCount(filter.EntryHeaders, MaxEntries);
                if (entry.EntryType != TarEntryType.GlobalExtendedAttributes && ++entries != filter.EntryHeaders)
                    throw new InvalidDataException($"layer tar framing out of step at entry '{entry.Name}'");
                try
                {
                    await session.ApplyAsync(entry, filter.CurrentXattrs, ct).ConfigureAwait(false);
                }
                catch (NativeException e)
                {
                    throw new IOException($"applying layer entry '{entry.Name}': {e.Message}", e);
                }
                // Consume what the entry did not (data of skipped entries).
                if (entry.DataStream is { } rest) await rest.CopyToAsync(Stream.Null, ct).ConfigureAwait(false);
            }
        }
        // Bytes after the end-of-archive marker are part of the blob the diff ID covers.
        await filter.CopyToAsync(Stream.Null, ct).ConfigureAwait(false);
        session.FinishDirectories();
        return session.Result;
    }

    /// <summary>
    /// Splits a tar name into clean components, resolving '.' and '..' lexically. Throws when '..'
    /// climbs above the root; an empty result means the root itself.
    /// </summary>
    internal static List<string> CleanName(string name, string entry, string what = "")
    {
        if (name.Contains('\0')) throw new UnsafeLayerException(entry, "contains a NUL character");
        LayerLimits.CheckPath(name, entry, what);
        var parts = new List<string>();
        foreach (var part in name.Split('/'))
        {
            if (part.Length == 0 || part == ".") continue;
            if (part == "..")
            {
                if (parts.Count == 0) throw new UnsafeLayerException(entry, $"{what}escapes the layer directory");
                parts.RemoveAt(parts.Count - 1);
                continue;
            }
            parts.Add(part);
            LayerLimits.CheckComponent(part, parts.Count, entry, what);
        }
        return parts;
    }

    /// <summary>libarchive URL-encodes the name and base64-encodes the value (padding optional).</summary>
    internal static bool TryDecodeLibarchiveXattr(string key, string value, out (string Name, byte[] Value) xattr)
    {
        xattr = default;
        string b64 = value.Trim();
        b64 = b64.PadRight(b64.Length + (4 - b64.Length % 4) % 4, '=');
        var bytes = new byte[b64.Length];
        if (!Convert.TryFromBase64String(b64, bytes, out int n)) return false;
        xattr = (Uri.UnescapeDataString(key[LibarchiveXattrPrefix.Length..]), bytes[..n]);
        return true;
    }

    /// <summary>Parses a PAX time ("1700000000.123456789", possibly negative) exactly.</summary>
    internal static bool TryParsePaxTime(string text, out UnixTimestamp time)
    {
        time = default;
        int dot = text.IndexOf('.');
        string whole = dot < 0 ? text : text[..dot];
        string fraction = dot < 0 ? "" : text[(dot + 1)..];
        if (!long.TryParse(whole, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long seconds)) return false;
        if (fraction.Length > 0 && !fraction.All(char.IsAsciiDigit)) return false;
        long nanos = fraction.Length == 0 ? 0 : long.Parse(fraction.PadRight(9, '0')[..9], CultureInfo.InvariantCulture);
        if (whole.StartsWith('-') && nanos > 0)
        {
            seconds -= 1;
            nanos = 1_000_000_000 - nanos;
        }
        time = new UnixTimestamp(seconds, nanos);
        return true;
    }

    private sealed class Session(SafeFileHandle root, ILogger logger) : IDisposable
    {
        // Directory times to apply at the end, by clean path ("" is the root); last entry wins.
        private readonly Dictionary<string, (UnixTimestamp Atime, UnixTimestamp Mtime)> dirTimes = new();
        private readonly List<string> dirOrder = new();

        // The most recent parent directory: tar entries come grouped by directory.
        private string? cachedKey;
        private SafeFileHandle? cachedHandle;

        private long bytes;
        private long inodes;
        private bool skipped;

        public UnpackResult Result => new(bytes, inodes, skipped);

        public async Task ApplyAsync(TarEntry entry, IReadOnlyList<(string Name, byte[] Value)> filtered, CancellationToken ct)
        {
            string name = entry.Name;
            switch (entry.EntryType)
            {
                case TarEntryType.GlobalExtendedAttributes:
                    logger.LogDebug("layer: ignoring PAX global header");
                    return;
                case TarEntryType.SparseFile:
                    throw new InvalidDataException($"layer entry '{name}' is a GNU sparse file, which is not supported");
                case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile
                    or TarEntryType.Directory or TarEntryType.SymbolicLink or TarEntryType.HardLink
                    or TarEntryType.CharacterDevice or TarEntryType.BlockDevice or TarEntryType.Fifo:
                    break;
                default:
                    logger.LogDebug("layer: skipping entry '{Name}' of unsupported type {Type}", name, entry.EntryType);
                    skipped = true;
                    return;
            }

            var parts = CleanName(name, name);
            if (parts.Count == 0)
            {
                ApplyRoot(entry, filtered);
                return;
            }
            for (int i = 0; i < parts.Count; i++)
            {
                // AUFS metadata (.wh..wh.plnk, .wh..wh.aufs ...) and anything below it.
                if (parts[i].StartsWith(WhiteoutMetaPrefix, StringComparison.Ordinal) && !(i == parts.Count - 1 && parts[i] == OpaqueMarker))
                {
                    logger.LogDebug("layer: ignoring AUFS metadata entry '{Name}'", name);
                    return;
                }
            }

            string key = string.Join('/', parts);
            string baseName = parts[^1];
            var parent = Parent(parts, parts.Count - 1, name);

            if (baseName == OpaqueMarker)
            {
                Xattrs.Set(parent, "trusted.overlay.opaque", "y"u8, Display(parts, parts.Count - 1));
                return;
            }
            if (baseName.StartsWith(WhiteoutPrefix, StringComparison.Ordinal))
            {
                string hidden = baseName[WhiteoutPrefix.Length..];
                if (hidden is "" or "." or "..")
                    throw new UnsafeLayerException(name, $"is a whiteout for the invalid name '{hidden}'");
                string hiddenKey = parts.Count == 1 ? hidden : key[..^baseName.Length] + hidden;
                RemoveExisting(parent, hidden, hiddenKey);
                FilesAt.Mknod(parent, hidden, FileType.CharacterDevice, 0, 0, 0, hiddenKey);
                FilesAt.Chown(parent, hidden, 0, 0, hiddenKey);
                inodes++;
                return;
            }

            if (entry.EntryType == TarEntryType.HardLink && CleanName(entry.LinkName, name, $"is a hardlink to '{entry.LinkName}', which ").SequenceEqual(parts))
            {
                logger.LogDebug("layer: ignoring hardlink '{Name}' to itself", name);
                return;
            }

            var existing = FilesAt.TryStat(parent, baseName, key);
            if (existing is { } old && !(old.IsDirectory && entry.EntryType == TarEntryType.Directory))
                RemoveExisting(parent, baseName, key);

            var (atime, mtime) = Times(entry);
            int mode = (int)entry.Mode & 0xFFF;
            var xattrs = ExtendedAttributes(entry, filtered);
            switch (entry.EntryType)
            {
                case TarEntryType.Directory:
                {
                    if (existing is not { IsDirectory: true })
                    {
                        FilesAt.Mkdir(parent, baseName, 0b111_000_000, key);
                        inodes++;
                    }
                    var dir = FilesAt.OpenDirectory(parent, baseName, key);
                    try
                    {
                        FilesAt.Chown(dir, entry.Uid, entry.Gid, key);
                        FilesAt.Chmod(dir, mode, key);
                        SetXattrs(xattrs, name, (n, v) => Xattrs.TrySet(dir, n, v));
                    }
                    catch
                    {
                        dir.Dispose();
                        throw;
                    }
                    RecordDirectoryTimes(key, atime, mtime);
                    // Its children usually come next: keep it as the cached parent.
                    SetCache(key, dir);
                    break;
                }
                case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                {
                    using var file = FilesAt.CreateFile(parent, baseName, 0b110_000_000, key);
                    inodes++;
                    long written = await CopyAsync(entry.DataStream, file, ct).ConfigureAwait(false);
                    if (written != entry.Length)
                        throw new InvalidDataException($"layer entry '{name}' is truncated: {written} of {entry.Length} bytes");
                    bytes += written;
                    // chown clears setuid/setgid and file capabilities, so mode and xattrs come after it.
                    FilesAt.Chown(file, entry.Uid, entry.Gid, key);
                    FilesAt.Chmod(file, mode, key);
                    SetXattrs(xattrs, name, (n, v) => Xattrs.TrySet(file, n, v));
                    FilesAt.SetTimes(file, atime, mtime, key);
                    break;
                }
                case TarEntryType.SymbolicLink:
                {
                    string target = entry.LinkName;
                    if (target.Length == 0) throw new InvalidDataException($"layer entry '{name}' is a symlink with an empty target");
                    if (target.Contains('\0')) throw new UnsafeLayerException(name, "is a symlink whose target contains a NUL character");
                    FilesAt.Symlink(target, parent, baseName, key);
                    inodes++;
                    FilesAt.Chown(parent, baseName, entry.Uid, entry.Gid, key);
                    SetXattrs(xattrs, name, (n, v) => Xattrs.TrySet(FilesAt.ProcPath(parent, baseName), n, v));
                    FilesAt.SetTimes(parent, baseName, atime, mtime, key);
                    break;
                }
                case TarEntryType.HardLink:
                    ApplyHardLink(entry, parent, baseName, key);
                    break;
                default: // character/block device, fifo
                {
                    var type = entry.EntryType switch
                    {
                        TarEntryType.CharacterDevice => FileType.CharacterDevice,
                        TarEntryType.BlockDevice => FileType.BlockDevice,
                        _ => FileType.Fifo,
                    };
                    var posix = (PosixTarEntry)entry;
                    uint major = type == FileType.Fifo ? 0 : (uint)posix.DeviceMajor;
                    uint minor = type == FileType.Fifo ? 0 : (uint)posix.DeviceMinor;
                    FilesAt.Mknod(parent, baseName, type, 0, major, minor, key);
                    inodes++;
                    FilesAt.Chown(parent, baseName, entry.Uid, entry.Gid, key);
                    FilesAt.Chmod(parent, baseName, mode, key);
                    SetXattrs(xattrs, name, (n, v) => Xattrs.TrySet(FilesAt.ProcPath(parent, baseName), n, v));
                    FilesAt.SetTimes(parent, baseName, atime, mtime, key);
                    break;
                }
            }
        }

        private void ApplyRoot(TarEntry entry, IReadOnlyList<(string Name, byte[] Value)> filtered)
        {
            if (entry.EntryType != TarEntryType.Directory)
                throw new UnsafeLayerException(entry.Name, "would replace the layer directory itself");
            // As docker does: a "./" entry carries the root directory's metadata.
            FilesAt.Chown(root, entry.Uid, entry.Gid, ".");
            FilesAt.Chmod(root, (int)entry.Mode & 0xFFF, ".");
            SetXattrs(ExtendedAttributes(entry, filtered), entry.Name, (n, v) => Xattrs.TrySet(root, n, v));
            var (atime, mtime) = Times(entry);
            RecordDirectoryTimes("", atime, mtime);
        }

        private void ApplyHardLink(TarEntry entry, SafeFileHandle parent, string baseName, string key)
        {
            string name = entry.Name;
            string link = entry.LinkName;
            var targetParts = CleanName(link, name, $"is a hardlink to '{link}', which ");
            if (targetParts.Count == 0) throw new UnsafeLayerException(name, "is a hardlink to the layer directory itself");

            var targetParent = Walk(targetParts, targetParts.Count - 1, create: false, name);
            if (targetParent is null) throw NotInLayer();
            try
            {
                var target = FilesAt.TryStat(targetParent, targetParts[^1], link);
                if (target is null) throw NotInLayer();
                if (target.Value.IsDirectory) throw new UnsafeLayerException(name, $"is a hardlink to the directory '{link}'");
                // ApplyAsync already removed whatever was at the link's own path.
                FilesAt.Link(targetParent, targetParts[^1], parent, baseName, key);
            }
            finally
            {
                if (!ReferenceEquals(targetParent, root)) targetParent.Dispose();
            }

            UnsafeLayerException NotInLayer() =>
                new(name, $"is a hardlink to '{link}', which is not in this layer (hardlinks may only point at entries extracted before them)");
        }

        /// <summary>The directory holding parts[..count], created (0755, root-owned) where missing.
        /// The handle belongs to the session: callers must not dispose it.</summary>
        private SafeFileHandle Parent(List<string> parts, int count, string entry)
        {
            if (count == 0) return root;
            string key = string.Join('/', parts.Take(count));
            if (cachedKey == key && cachedHandle is not null) return cachedHandle;
            var handle = Walk(parts, count, create: true, entry)!;
            SetCache(key, handle);
            return handle;
        }

        /// <summary>Opens parts[..count] one component at a time without following symlinks. Returns
        /// null when a component is missing and <paramref name="create"/> is false; the caller owns
        /// the returned handle unless it is the root.</summary>
        private SafeFileHandle? Walk(List<string> parts, int count, bool create, string entry)
        {
            var current = root;
            try
            {
                for (int i = 0; i < count; i++)
                {
                    var next = FilesAt.TryOpenDirectory(current, parts[i], out int errno);
                    if (next is null)
                    {
                        string prefix = Display(parts, i + 1);
                        if (errno == Errno.ENOENT && create)
                        {
                            FilesAt.Mkdir(current, parts[i], 0b111_101_101, prefix);
                            inodes++;
                            next = FilesAt.OpenDirectory(current, parts[i], prefix);
                            FilesAt.Chmod(next, 0b111_101_101, prefix); // undo the umask
                        }
                        else if (errno == Errno.ENOENT)
                        {
                            return null;
                        }
                        else if (errno is Errno.ELOOP or Errno.ENOTDIR)
                        {
                            if (FilesAt.TryStat(current, parts[i], prefix) is { Type: FileType.Symlink })
                                throw new UnsafeLayerException(entry, $"lies below '{prefix}', which is a symlink; refusing to write through it");
                            if (!create) return null;
                            throw new InvalidDataException($"layer entry '{entry}' lies below '{prefix}', which is not a directory");
                        }
                        else
                        {
                            throw new NativeException("openat", prefix, errno);
                        }
                    }
                    if (!ReferenceEquals(current, root)) current.Dispose();
                    current = next;
                }
                return current;
            }
            catch
            {
                if (!ReferenceEquals(current, root)) current.Dispose();
                throw;
            }
        }

        /// <summary>Removes what is at <paramref name="key"/> (a whole tree for a directory).</summary>
        private void RemoveExisting(SafeFileHandle parent, string name, string key)
        {
            var st = FilesAt.TryStat(parent, name, key);
            if (st is null) return;
            if (cachedKey is not null && (cachedKey == key || cachedKey.StartsWith(key + "/", StringComparison.Ordinal)))
                SetCache(null, null);
            FilesAt.RemoveTree(parent, name, key, Uncount);
            if (st.Value.IsDirectory)
            {
                foreach (var stale in dirOrder.Where(d => d == key || d.StartsWith(key + "/", StringComparison.Ordinal)))
                    dirTimes.Remove(stale);
            }
        }

        /// <summary>Takes a removed inode back out of the result (unless another hardlink keeps it).</summary>
        private void Uncount(FileStatus removed)
        {
            if (!removed.IsDirectory && removed.LinkCount > 1) return;
            inodes--;
            if (removed.Type == FileType.RegularFile) bytes -= removed.Size;
        }

        private void SetCache(string? key, SafeFileHandle? handle)
        {
            if (cachedHandle is not null && !ReferenceEquals(cachedHandle, handle)) cachedHandle.Dispose();
            cachedKey = key;
            cachedHandle = handle;
        }

        private void RecordDirectoryTimes(string key, UnixTimestamp atime, UnixTimestamp mtime)
        {
            if (!dirTimes.ContainsKey(key)) dirOrder.Add(key);
            dirTimes[key] = (atime, mtime);
        }

        /// <summary>Sets directory times now that nothing more will be created inside them.</summary>
        public void FinishDirectories()
        {
            SetCache(null, null);
            foreach (var key in dirOrder)
            {
                if (!dirTimes.TryGetValue(key, out var times)) continue;
                if (key.Length == 0)
                {
                    FilesAt.SetTimes(root, times.Atime, times.Mtime, ".");
                    continue;
                }
                var parts = key.Split('/').ToList();
                var parent = Walk(parts, parts.Count - 1, create: false, key);
                if (parent is null) continue;
                try
                {
                    // Replaced by a non-directory since: that entry's own times stand.
                    if (FilesAt.TryStat(parent, parts[^1], key) is { IsDirectory: true })
                        FilesAt.SetTimes(parent, parts[^1], times.Atime, times.Mtime, key);
                }
                finally
                {
                    if (!ReferenceEquals(parent, root)) parent.Dispose();
                }
            }
        }

        private void SetXattrs(List<(string Name, byte[] Value)> xattrs, string entry, Func<string, byte[], int> set)
        {
            foreach (var (name, value) in xattrs)
            {
                // Overlay's own bookkeeping (redirect, origin, metacopy...) refers to other layers'
                // inodes and paths: a layer must not forge it. Opaque is the same as .wh..wh..opq.
                if (name.StartsWith("trusted.overlay.", StringComparison.Ordinal) && name != "trusted.overlay.opaque")
                {
                    logger.LogDebug("layer: not setting xattr {Xattr} on '{Entry}': overlay-internal", name, entry);
                    skipped = true;
                    continue;
                }
                int errno = set(name, value);
                if (errno == 0) continue;
                if (errno is Errno.EPERM or Errno.ENOTSUP && !name.StartsWith("trusted.", StringComparison.Ordinal))
                {
                    logger.LogDebug("layer: xattr {Xattr} on '{Entry}' not set: {Errno}", name, entry, Errno.Name(errno));
                    skipped = true;
                    continue;
                }
                throw new NativeException("setxattr", entry, errno, $"setxattr {name} on");
            }
        }

        private static async Task<long> CopyAsync(Stream? data, SafeFileHandle file, CancellationToken ct)
        {
            if (data is null) return 0;
            var buffer = ArrayPool<byte>.Shared.Rent(256 * 1024);
            try
            {
                long offset = 0;
                int n;
                while ((n = await data.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                {
                    await RandomAccess.WriteAsync(file, buffer.AsMemory(0, n), offset, ct).ConfigureAwait(false);
                    offset += n;
                }
                return offset;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        private static (UnixTimestamp Atime, UnixTimestamp Mtime) Times(TarEntry entry)
        {
            // PAX times carry nanoseconds; TarEntry's DateTimeOffset only keeps 100 ns.
            var pax = (entry as PaxTarEntry)?.ExtendedAttributes;
            UnixTimestamp mtime = pax is not null && pax.TryGetValue("mtime", out var m) && TryParsePaxTime(m, out var pm)
                ? pm
                : UnixTimestamp.FromDateTimeOffset(entry.ModificationTime);
            UnixTimestamp atime = mtime;
            if (pax is not null && pax.TryGetValue("atime", out var a) && TryParsePaxTime(a, out var pa)) atime = pa;
            else if (entry is GnuTarEntry gnu && gnu.AccessTime > DateTimeOffset.UnixEpoch) atime = UnixTimestamp.FromDateTimeOffset(gnu.AccessTime);
            return (atime, mtime);
        }

        private static List<(string Name, byte[] Value)> ExtendedAttributes(TarEntry entry, IReadOnlyList<(string Name, byte[] Value)> filtered)
        {
            // PaxXattrFilter has taken them out of the header with their exact bytes; only a
            // LIBARCHIVE.xattr record it could not decode is left (and skipped here again).
            var result = new List<(string Name, byte[] Value)>(filtered);
            if (entry is PaxTarEntry pax)
            {
                foreach (var (key, value) in pax.ExtendedAttributes)
                {
                    if (key.StartsWith(SchilyXattrPrefix, StringComparison.Ordinal))
                        result.Add((key[SchilyXattrPrefix.Length..], Encoding.UTF8.GetBytes(value)));
                    else if (key.StartsWith(LibarchiveXattrPrefix, StringComparison.Ordinal) && TryDecodeLibarchiveXattr(key, value, out var xattr))
                        result.Add(xattr);
                }
            }
            foreach (var (name, _) in result)
                if (name.Length == 0 || name.Contains('\0'))
                    throw new UnsafeLayerException(entry.Name, "carries an xattr with an invalid name");
            return result;
        }

        private static string Display(List<string> parts, int count) => string.Join('/', parts.Take(count));

        public void Dispose()
        {
            SetCache(null, null);
            root.Dispose();
        }
    }
}
