using System.Buffers;
using System.Buffers.Text;
using System.Text;
using System.Text.Json;
using Hapnd.Projections.Contracts;

namespace Hapnd.Worker;

/// <summary>
/// Reads a batch's rows (see <see cref="BatchBody"/>) with a scanner made for their one layout, several times faster
/// than a general JSON reader, which replays are bound by. It checks the layout strictly (brackets, commas, types)
/// and fails with <see cref="FormatException"/>; it does not validate an event's data beyond finding where it ends:
/// the data was validated when it was appended, and a malformed one fails in <c>GetData</c> like any bad data.
/// Strings with escapes are decoded by <see cref="JsonSerializer"/>, which is exact; plain ones directly.
/// </summary>
internal ref struct RowScanner
{
    private readonly ReadOnlySpan<byte> _json;
    private int _at;

    // A batch's events mostly share their aggregate and types: the last string of each column is reused while the
    // bytes match, instead of allocating the same string thousands of times.
    private Recent _key;
    private Recent _aggregateId;
    private Recent _aggregateType;
    private Recent _type;

    private RowScanner(ReadOnlySpan<byte> json, int at)
    {
        _json = json;
        _at = at;
    }

    /// <summary>Reads the array of rows starting at <paramref name="start"/> (its <c>[</c>); returns the offset after its <c>]</c>.</summary>
    public static int ReadRows(ReadOnlySpan<byte> json, int start, List<(string Key, Event Event)> rows)
    {
        var scanner = new RowScanner(json, start);
        scanner.Expect((byte)'[');
        if (scanner.TryTake((byte)']'))
        {
            return scanner._at;
        }
        do
        {
            rows.Add(scanner.ReadRow());
        }
        while (scanner.TryTake((byte)','));
        scanner.Expect((byte)']');
        return scanner._at;
    }

    private (string, Event) ReadRow()
    {
        Expect((byte)'[');
        var key = Peek() == (byte)'n' ? Null("key") : _key.Read(String("key"));
        Comma();
        var eventId = Guid(String("eventId"));
        Comma();
        var aggregateId = _aggregateId.Read(String("aggregateId"));
        Comma();
        var aggregateType = _aggregateType.Read(String("aggregateType"));
        Comma();
        var type = _type.Read(String("eventType"));
        Comma();
        var version = Integer("version");
        Comma();
        var globalPosition = Integer("globalPosition");
        Comma();
        var timestamp = DateTimeOffset.UnixEpoch.AddTicks(Integer("timestampMicros") * TimeSpan.TicksPerMicrosecond);
        Comma();
        // A copy: the frame's buffer is reused by the next request, and user code may keep an event.
        var data = Value("data").ToArray();
        Comma();
        JsonElement? metadata = null;
        if (Peek() == (byte)'n')
        {
            Null("metadata");
        }
        else
        {
            var reader = new Utf8JsonReader(Value("metadata"));
            metadata = JsonElement.ParseValue(ref reader);
        }
        Comma();
        var correlationId = Peek() == (byte)'n' ? Null("correlationId") : Text(String("correlationId"));
        Comma();
        var causationId = Peek() == (byte)'n' ? Null("causationId") : Text(String("causationId"));
        Expect((byte)']');
        return (key ?? "", new Event
        {
            EventId = eventId,
            AggregateId = aggregateId,
            AggregateType = aggregateType,
            Type = type,
            Version = version,
            GlobalPosition = globalPosition,
            Timestamp = timestamp,
            DataUtf8 = data,
            Metadata = metadata,
            CorrelationId = correlationId,
            CausationId = causationId,
        });
    }

    /// <summary>A JSON string token, quotes included.</summary>
    private ReadOnlySpan<byte> String(string what)
    {
        var start = _at;
        Expect((byte)'"', what);
        var at = _at;
        while (true)
        {
            var found = _json[at..].IndexOfAny((byte)'"', (byte)'\\');
            if (found < 0)
            {
                _at = _json.Length;
                throw Bad(what);
            }
            at += found;
            if (_json[at] == (byte)'"')
            {
                _at = at + 1;
                return _json[start.._at];
            }
            at += 2;
            if (at >= _json.Length)
            {
                _at = _json.Length;
                throw Bad(what);
            }
        }
    }

    /// <summary>Any JSON value: where it ends, found by depth with strings skipped.</summary>
    private ReadOnlySpan<byte> Value(string what)
    {
        var start = _at;
        var depth = 0;
        while (true)
        {
            var found = _json[_at..].IndexOfAny(Structural);
            if (found < 0)
            {
                _at = _json.Length;
                break;
            }
            _at += found;
            var c = _json[_at];
            if (c == (byte)'"')
            {
                String(what);
                if (depth == 0)
                {
                    return _json[start.._at];
                }
                continue;
            }
            if (c is (byte)'{' or (byte)'[')
            {
                depth++;
            }
            else if (c is (byte)'}' or (byte)']')
            {
                if (depth == 0)
                {
                    break;
                }
                depth--;
                if (depth == 0)
                {
                    _at++;
                    return _json[start.._at];
                }
            }
            else if (depth == 0)
            {
                break;
            }
            _at++;
        }
        return _at > start && depth == 0 ? _json[start.._at] : throw Bad(what);
    }

    /// <summary>The bytes a value's end is found by: strings are skipped whole, brackets counted.</summary>
    private static readonly SearchValues<byte> Structural = SearchValues.Create("\"{}[],"u8);

    private long Integer(string what)
    {
        if (!Utf8Parser.TryParse(_json[_at..], out long value, out var consumed) || consumed == 0)
        {
            throw Bad(what);
        }
        _at += consumed;
        return value;
    }

    private string? Null(string what)
    {
        if (!_json[_at..].StartsWith("null"u8))
        {
            throw Bad(what);
        }
        _at += 4;
        return null;
    }

    private static Guid Guid(ReadOnlySpan<byte> quoted) =>
        Utf8Parser.TryParse(quoted[1..^1], out Guid id, out var consumed, 'D') && consumed == quoted.Length - 2
            ? id
            : throw new FormatException("a batch row's eventId is not a GUID");

    /// <summary>The text of a string token: decoded directly when it has no escapes.</summary>
    private static string Text(ReadOnlySpan<byte> quoted) =>
        quoted.IndexOf((byte)'\\') < 0
            ? Encoding.UTF8.GetString(quoted[1..^1])
            : JsonSerializer.Deserialize<string>(quoted) ?? "";

    private byte Peek() => _at < _json.Length ? _json[_at] : (byte)0;

    private bool TryTake(byte c)
    {
        if (Peek() != c)
        {
            return false;
        }
        _at++;
        return true;
    }

    private void Comma() => Expect((byte)',');

    private void Expect(byte c, string? what = null)
    {
        if (!TryTake(c))
        {
            throw Bad(what ?? $"'{(char)c}'");
        }
    }

    private readonly FormatException Bad(string what) => new($"a batch row is malformed at {what} (offset {_at})");

    /// <summary>The last string read for one column, reused while the next rows carry the same bytes.</summary>
    /// <summary>
    /// The last few distinct strings of a column: a log interleaves a handful of event types (and a batch a few
    /// aggregates), so remembering only the last one missed every other row.
    /// </summary>
    private struct Recent
    {
        private const int Slots = 4;
        private (byte[] Bytes, string Text)[]? _seen;
        private int _next;

        public string Read(ReadOnlySpan<byte> quoted)
        {
            _seen ??= new (byte[], string)[Slots];
            foreach (var (bytes, text) in _seen)
            {
                if (bytes is not null && quoted.SequenceEqual(bytes))
                {
                    return text;
                }
            }
            var read = Text(quoted);
            _seen[_next] = (quoted.ToArray(), read);
            _next = (_next + 1) % Slots;
            return read;
        }
    }
}
