using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json;
using Hapnd.Projections.Contracts;

public record SensorState
{
    public string Name { get; init; } = "";
    public int High { get; init; } = 100;
    public int Low { get; init; }
    public List<string> Tags { get; init; } = [];
    public int Readings { get; init; }
    public int Sum { get; init; }
    public int? Min { get; init; }
    public int? Max { get; init; }
    public int HighAlarms { get; init; }
    public int LowAlarms { get; init; }
    public int InvalidReadings { get; init; }
    public int ManualReadings { get; init; }
    public string? LastOperator { get; init; }
    public long LastReadingPosition { get; init; }
}

public class SensorReducer : IReducer<SensorState>
{
    public SensorState Apply(SensorState? state, Event @event)
    {
        var s = state ?? new SensorState();
        var data = @event.Data;
        switch (@event.Type)
        {
            case "Configured":
            {
                var thresholds = data.GetProperty("thresholds");
                return s with
                {
                    Name = data.GetProperty("name").GetString() ?? "",
                    High = thresholds.GetProperty("high").GetInt32(),
                    Low = thresholds.GetProperty("low").GetInt32(),
                    Tags = MergeTags(s.Tags, data),
                };
            }
            case "TagsAdded":
                return s with { Tags = MergeTags(s.Tags, data) };
            case "Reading":
                return Read(s, @event);
            default:
                return s;
        }
    }

    private static List<string> MergeTags(List<string> existing, JsonElement data) =>
        existing
            .Concat(data.GetProperty("tags").EnumerateArray().Select(t => t.GetString() ?? ""))
            .Where(t => t.Length > 0)
            .Distinct()
            .OrderBy(t => t)
            .ToList();

    private static SensorState Read(SensorState s, Event @event)
    {
        var data = @event.Data;
        if (!data.TryGetProperty("value", out var raw) || raw.ValueKind != JsonValueKind.Number)
        {
            return s with { InvalidReadings = s.InvalidReadings + 1 };
        }

        var value = raw.GetInt32();
        var unit = data.TryGetProperty("unit", out var u) && u.ValueKind == JsonValueKind.String ? u.GetString() : "C";
        if (unit == "F")
        {
            value = (value - 32) * 5 / 9;
        }

        var manual = false;
        var op = s.LastOperator;
        if (@event.Metadata is { ValueKind: JsonValueKind.Object } meta)
        {
            manual = meta.TryGetProperty("source", out var source) && source.ValueKind == JsonValueKind.String
                && source.GetString() == "manual";
            if (meta.TryGetProperty("operator", out var o) && o.ValueKind == JsonValueKind.String)
            {
                op = o.GetString();
            }
        }

        return s with
        {
            Readings = s.Readings + 1,
            Sum = s.Sum + value,
            Min = s.Min is { } min ? Math.Min(min, value) : value,
            Max = s.Max is { } max ? Math.Max(max, value) : value,
            HighAlarms = s.HighAlarms + (value > s.High ? 1 : 0),
            LowAlarms = s.LowAlarms + (value < s.Low ? 1 : 0),
            ManualReadings = s.ManualReadings + (manual ? 1 : 0),
            LastOperator = op,
            LastReadingPosition = @event.GlobalPosition,
        };
    }
}
