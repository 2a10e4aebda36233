namespace CriRuntime.Native;

/// <summary>The S_IFMT part of a mode.</summary>
public enum FileType
{
    Unknown = 0,
    Fifo = 0x1000,
    CharacterDevice = 0x2000,
    Directory = 0x4000,
    BlockDevice = 0x6000,
    RegularFile = 0x8000,
    Symlink = 0xA000,
    Socket = 0xC000,
}

/// <summary>A timestamp with the kernel's nanosecond resolution (DateTimeOffset only has 100 ns).</summary>
public readonly record struct UnixTimestamp(long Seconds, long Nanoseconds)
{
    public static UnixTimestamp FromDateTimeOffset(DateTimeOffset value)
    {
        long ticks = value.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks;
        long seconds = Math.DivRem(ticks, TimeSpan.TicksPerSecond, out long rem);
        if (rem < 0) { seconds--; rem += TimeSpan.TicksPerSecond; }
        return new UnixTimestamp(seconds, rem * 100);
    }

    public DateTimeOffset ToDateTimeOffset() =>
        DateTimeOffset.UnixEpoch.AddTicks(Seconds * TimeSpan.TicksPerSecond + Nanoseconds / 100);

    public override string ToString() => $"{Seconds}.{Nanoseconds:D9}";
}

/// <summary>What lstat/fstatat report.</summary>
public readonly record struct FileStatus(
    ulong Device,
    ulong Inode,
    uint Mode,
    ulong LinkCount,
    uint Uid,
    uint Gid,
    ulong RDevice,
    long Size,
    long Blocks,
    UnixTimestamp AccessTime,
    UnixTimestamp ModificationTime,
    UnixTimestamp ChangeTime)
{
    public FileType Type => (FileType)(Mode & 0xF000);

    /// <summary>Permission bits including setuid/setgid/sticky (07777).</summary>
    public int Permissions => (int)(Mode & 0xFFF);

    public bool IsDirectory => Type == FileType.Directory;

    /// <summary>Bytes actually allocated (st_blocks is in 512-byte units whatever the block size).</summary>
    public long AllocatedBytes => Blocks * 512;

    public uint RDeviceMajor => Devices.Major(RDevice);

    public uint RDeviceMinor => Devices.Minor(RDevice);
}

/// <summary>What statfs reports about a filesystem.</summary>
public readonly record struct FilesystemStats(
    long Type,
    long BlockSize,
    long FragmentSize,
    ulong TotalBlocks,
    ulong FreeBlocks,
    ulong AvailableBlocks,
    ulong TotalInodes,
    ulong FreeInodes)
{
    public const long Ext4Magic = 0xEF53, TmpfsMagic = 0x01021994, XfsMagic = 0x58465342,
        BtrfsMagic = 0x9123683E, OverlayMagic = 0x794C7630;

    public ulong CapacityBytes => TotalBlocks * (ulong)FragmentSize;

    public ulong AvailableBytes => AvailableBlocks * (ulong)FragmentSize;

    public ulong UsedBytes => (TotalBlocks - FreeBlocks) * (ulong)FragmentSize;

    public ulong UsedInodes => TotalInodes - FreeInodes;
}

/// <summary>dev_t encoding, as glibc's makedev/major/minor.</summary>
public static class Devices
{
    public static ulong MakeDev(uint major, uint minor) =>
        ((ulong)(major & 0xFFFFF000) << 32) | ((ulong)(major & 0xFFF) << 8) |
        ((ulong)(minor & 0xFFFFFF00) << 12) | (minor & 0xFF);

    public static uint Major(ulong dev) => (uint)(((dev >> 32) & 0xFFFFF000) | ((dev >> 8) & 0xFFF));

    public static uint Minor(ulong dev) => (uint)(((dev >> 12) & 0xFFFFFF00) | (dev & 0xFF));
}
