using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record Ranked<T>(int Rank, T Item, int Points);

public record ScoreboardState
{
    public Dictionary<string, int> Scores { get; init; } = [];
    public Dictionary<string, int> EventCounts { get; init; } = [];
    public List<Ranked<string>> Standings { get; init; } = [];
    public string? Leader { get; init; }
    public int TotalPoints { get; init; }
    public int Rounds { get; init; }
}

public record PointsData(string Player, int Points);

/// <summary>A user-written generic helper: copy-on-write counters keyed by anything.</summary>
public static class Tally<TKey> where TKey : notnull
{
    public static Dictionary<TKey, int> Add(Dictionary<TKey, int> source, TKey key, int by)
    {
        var copy = new Dictionary<TKey, int>(source);
        copy[key] = copy.TryGetValue(key, out var current) ? current + by : by;
        return copy;
    }

    public static List<Ranked<TKey>> Rank(IEnumerable<KeyValuePair<TKey, int>> entries, Comparison<TKey> tieBreak)
    {
        var list = entries.ToList();
        list.Sort((a, b) => a.Value != b.Value ? b.Value.CompareTo(a.Value) : tieBreak(a.Key, b.Key));
        return list.Select(e => new Ranked<TKey>(1 + list.Count(o => o.Value > e.Value), e.Key, e.Value)).ToList();
    }
}

public class ScoreboardReducer : IReducer<ScoreboardState>
{
    public ScoreboardState Apply(ScoreboardState? state, Event @event)
    {
        var s = state ?? new ScoreboardState();
        s = s with { EventCounts = Tally<string>.Add(s.EventCounts, @event.Type, 1) };

        Func<PointsData, int> sign = @event.Type == "PenaltyApplied" ? p => -p.Points : p => p.Points;

        switch (@event.Type)
        {
            case "PointsScored":
            case "PenaltyApplied":
                var data = @event.GetData<PointsData>();
                var scores = Tally<string>.Add(s.Scores, data.Player, sign(data));
                var standings = Tally<string>.Rank(scores, string.CompareOrdinal);
                return s with
                {
                    Scores = scores,
                    Standings = standings,
                    Leader = Best(standings, r => r.Points)?.Item,
                    TotalPoints = Sum(scores.Values),
                };
            case "RoundEnded":
                return s with { Rounds = s.Rounds + 1 };
            default:
                return s;
        }
    }

    private static T? Best<T>(IEnumerable<T> items, Func<T, int> score) where T : class
    {
        T? best = null;
        var bestScore = int.MinValue;
        foreach (var item in items)
        {
            var value = score(item);
            if (value > bestScore)
            {
                (best, bestScore) = (item, value);
            }
        }

        return best;
    }

    private static int Sum(IEnumerable<int> values)
    {
        var total = 0;
        foreach (var v in values)
        {
            total = checked(total + v);
        }

        return total;
    }
}
