using System.Collections;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace CriRuntime.FuzzTests;

/// <summary>
/// Mutates any protobuf message by walking its descriptor: every field path down to a bounded depth (scalars,
/// enums, repeated fields, maps and sub-messages, set or not) is a target, so a field added to api.proto is fuzzed
/// without a change here. Strings get <see cref="HostileValues"/>, numbers their extremes, enums values outside
/// the enum, repeated fields and maps thousands of entries, sub-messages are dropped or made empty.
/// </summary>
public sealed class RequestMutator(HostileValues values)
{
    /// <summary>CRI messages nest about five deep (CreateContainer.config.linux.security_context.namespace_options.target_id).</summary>
    private const int MaxDepth = 7;

    /// <summary>What all the entries of one blown-up repeated field may add up to: requests stay under gRPC's 4 MiB.</summary>
    private const int ManyEntriesBudget = 2 * 1024 * 1024;

    private readonly Dictionary<MessageDescriptor, IReadOnlyList<FieldDescriptor[]>> pathCache = [];

    // Set while the template of a blown-up repeated field is made: no 1 MiB values and no thousands inside it,
    // else 3000 copies of it would be gigabytes.
    private bool makingTemplate;

    /// <summary>Every field path of <paramref name="descriptor"/> (a path ends at any field, message fields included).</summary>
    public IReadOnlyList<FieldDescriptor[]> Paths(MessageDescriptor descriptor)
    {
        lock (pathCache)
        {
            if (pathCache.TryGetValue(descriptor, out var cached)) return cached;
            var paths = new List<FieldDescriptor[]>();
            Collect(descriptor, [], paths, []);
            pathCache[descriptor] = paths;
            return paths;
        }
    }

    private static void Collect(MessageDescriptor descriptor, List<FieldDescriptor> prefix, List<FieldDescriptor[]> paths, HashSet<MessageDescriptor> onStack)
    {
        if (prefix.Count >= MaxDepth || !onStack.Add(descriptor)) return;
        foreach (var field in descriptor.Fields.InFieldNumberOrder())
        {
            prefix.Add(field);
            paths.Add([.. prefix]);
            // Walk into single and repeated sub-messages (not into map entries: their key and value are mutated whole).
            if (field.FieldType == FieldType.Message && !field.IsMap)
                Collect(field.MessageType, prefix, paths, onStack);
            prefix.RemoveAt(prefix.Count - 1);
        }
        onStack.Remove(descriptor);
    }

    /// <summary>Applies <paramref name="count"/> random mutations to <paramref name="message"/>; returns what each did.</summary>
    public List<string> Mutate(IMessage message, Random rng, int count)
    {
        var paths = Paths(message.Descriptor);
        var done = new List<string>();
        if (paths.Count == 0) return done;
        for (int i = 0; i < count; i++)
        {
            var path = paths[rng.Next(paths.Count)];
            done.Add(Apply(message, path, 0, rng, ""));
        }
        return done;
    }

    private string Apply(IMessage message, FieldDescriptor[] path, int index, Random rng, string prefix)
    {
        var field = path[index];
        string name = prefix.Length == 0 ? field.Name : prefix + "." + field.Name;
        if (index == path.Length - 1) return name + " = " + MutateField(message, field, rng);

        if (field.IsRepeated)
        {
            var list = (IList)field.Accessor.GetValue(message);
            if (list.Count == 0) list.Add(NewMessage(field.MessageType));
            int at = rng.Next(list.Count);
            return Apply((IMessage)list[at]!, path, index + 1, rng, $"{name}[{at}]");
        }
        var child = (IMessage?)field.Accessor.GetValue(message);
        if (child is null)
        {
            child = NewMessage(field.MessageType);
            field.Accessor.SetValue(message, child);
        }
        return Apply(child, path, index + 1, rng, name);
    }

    private string MutateField(IMessage message, FieldDescriptor field, Random rng)
    {
        if (field.IsMap)
        {
            var map = (IDictionary)field.Accessor.GetValue(message);
            var keyField = field.MessageType.FindFieldByNumber(1);
            var valueField = field.MessageType.FindFieldByNumber(2);
            switch (rng.Next(makingTemplate ? 3 : 4) + (makingTemplate ? 1 : 0))
            {
                case 0:
                {
                    var (value, what) = Value(valueField, rng, allowHuge: false);
                    int size = (value is string str ? System.Text.Encoding.UTF8.GetByteCount(str) : 16) + 24;
                    int count = Math.Clamp(ManyEntriesBudget / size, 1, HostileValues.ManyEntries);
                    for (int i = 0; i < count; i++) map[ScalarFor(keyField, rng, i)] = value;
                    return $"{count} entries of {what}";
                }
                case 1:
                {
                    var (key, what) = Value(keyField, rng, allowHuge: !makingTemplate);
                    map[key] = Value(valueField, rng, allowHuge: false).Value;
                    return $"{{{what}: ...}}";
                }
                case 2:
                {
                    var (value, what) = Value(valueField, rng, allowHuge: !makingTemplate);
                    map[ScalarFor(keyField, rng, 0)] = value;
                    return $"{{k0: {what}}}";
                }
                default:
                    map.Clear();
                    return "{}";
            }
        }
        if (field.IsRepeated)
        {
            var list = (IList)field.Accessor.GetValue(message);
            switch (rng.Next(makingTemplate ? 2 : 3) + (makingTemplate ? 1 : 0))
            {
                case 0:
                {
                    // Thousands of entries of a short value, as many as fit the budget.
                    makingTemplate = true;
                    (object template, string what) = (null!, "");
                    try
                    {
                        (template, what) = Value(field, rng, allowHuge: false);
                    }
                    finally
                    {
                        makingTemplate = false;
                    }
                    int size = template switch
                    {
                        IMessage m => m.CalculateSize() + 4,
                        string str => System.Text.Encoding.UTF8.GetByteCount(str) + 4,
                        ByteString b => b.Length + 4,
                        _ => 10,
                    };
                    int count = Math.Clamp(ManyEntriesBudget / size, 1, HostileValues.ManyEntries);
                    for (int i = 0; i < count; i++)
                        list.Add(template is IMessage m ? m.Descriptor.Parser.ParseFrom(m.ToByteString()) : template);
                    return $"{count} x {what}";
                }
                case 1:
                {
                    var (value, what) = Value(field, rng, allowHuge: !makingTemplate);
                    list.Add(value);
                    return $"[..., {what}]";
                }
                default:
                    list.Clear();
                    return "[]";
            }
        }
        if (field.FieldType == FieldType.Message)
        {
            if (rng.Next(2) == 0)
            {
                field.Accessor.Clear(message);
                return "unset";
            }
            field.Accessor.SetValue(message, NewMessage(field.MessageType));
            return "{}";
        }
        var (scalar, description) = Value(field, rng, allowHuge: !makingTemplate);
        field.Accessor.SetValue(message, scalar);
        return description;
    }

    /// <summary>A value for one element of <paramref name="field"/> (its element type when repeated).</summary>
    private (object Value, string Description) Value(FieldDescriptor field, Random rng, bool allowHuge)
    {
        switch (field.FieldType)
        {
            case FieldType.String:
                return values.String(rng, allowHuge);
            case FieldType.Bytes:
            {
                var (s, what) = values.String(rng, allowHuge);
                return (ByteString.CopyFromUtf8(s), what);
            }
            case FieldType.Bool:
                return rng.Next(2) == 0 ? (true, "true") : (false, "false");
            case FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64:
            {
                long v = HostileValues.Int64s[rng.Next(HostileValues.Int64s.Length)];
                return (v, v.ToString());
            }
            case FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32:
            {
                int v = HostileValues.Int32s[rng.Next(HostileValues.Int32s.Length)];
                return (v, v.ToString());
            }
            case FieldType.UInt64 or FieldType.Fixed64:
            {
                ulong v = HostileValues.UInt64s[rng.Next(HostileValues.UInt64s.Length)];
                return (v, v.ToString());
            }
            case FieldType.UInt32 or FieldType.Fixed32:
            {
                uint v = HostileValues.UInt32s[rng.Next(HostileValues.UInt32s.Length)];
                return (v, v.ToString());
            }
            case FieldType.Double:
            {
                double v = HostileValues.Doubles[rng.Next(HostileValues.Doubles.Length)];
                return (v, v.ToString());
            }
            case FieldType.Float:
            {
                float v = (float)HostileValues.Doubles[rng.Next(HostileValues.Doubles.Length)];
                return (v, v.ToString());
            }
            case FieldType.Enum:
            {
                // Half the time a value the enum does not define, else a defined one (a valid but unusual mode).
                int v = rng.Next(2) == 0
                    ? HostileValues.EnumValues[rng.Next(HostileValues.EnumValues.Length)]
                    : field.EnumType.Values[rng.Next(field.EnumType.Values.Count)].Number;
                return (Enum.ToObject(field.EnumType.ClrType, v), $"{field.EnumType.Name}({v})");
            }
            case FieldType.Message:
            {
                // An element of a repeated message: empty, or with one hostile field of its own.
                var m = NewMessage(field.MessageType);
                if (rng.Next(2) == 0) return (m, "{}");
                var paths = Paths(m.Descriptor);
                if (paths.Count == 0) return (m, "{}");
                string inner = Apply(m, paths[rng.Next(paths.Count)], 0, rng, "");
                return (m, "{" + inner + "}");
            }
            default:
                throw new NotSupportedException($"field {field.FullName} has type {field.FieldType}");
        }
    }

    /// <summary>A distinct map key number <paramref name="i"/> of the key's type (string keys carry the run's token).</summary>
    private object ScalarFor(FieldDescriptor keyField, Random rng, int i) => keyField.FieldType switch
    {
        FieldType.String => $"{values.Token}.k{i}",
        FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32 => i,
        FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64 => (long)i,
        FieldType.UInt32 or FieldType.Fixed32 => (uint)i,
        FieldType.UInt64 or FieldType.Fixed64 => (ulong)i,
        FieldType.Bool => i % 2 == 0,
        _ => Value(keyField, rng, allowHuge: false).Value,
    };

    public static IMessage NewMessage(MessageDescriptor descriptor) =>
        (IMessage)Activator.CreateInstance(descriptor.ClrType)!;
}
