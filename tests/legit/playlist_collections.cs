using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record Track(string Title, int Seconds);

public record PlaylistState
{
    public string Name { get; init; } = "";
    public List<Track> Tracks { get; init; } = [];
    public int TotalSeconds { get; init; }
    public string Duration { get; init; } = "0:00";
    public int DistinctTitles { get; init; }
    public string? LongestTrack { get; init; }
    public List<string> Pairs { get; init; } = [];
}

public record PlaylistCreatedData(string Name, List<Track> Tracks);

public record TracksData(List<Track> Tracks);

public record TrackMovedData(int From, int To);

public record TrackRemovedData(string Title);

public class PlaylistReducer : IReducer<PlaylistState>
{
    public PlaylistState Apply(PlaylistState? state, Event @event)
    {
        var s = state ?? new PlaylistState();
        List<Track> tracks = @event.Type switch
        {
            "Created" => [.. @event.GetData<PlaylistCreatedData>().Tracks],
            "TracksAppended" => [.. s.Tracks, .. @event.GetData<TracksData>().Tracks],
            "TracksPrepended" => [.. @event.GetData<TracksData>().Tracks, .. s.Tracks],
            "TrackMoved" => Move(s.Tracks, @event.GetData<TrackMovedData>()),
            "TrackRemoved" => [.. s.Tracks.Where(t => t.Title != @event.GetData<TrackRemovedData>().Title)],
            "Reversed" => [.. Enumerable.Reverse(s.Tracks)],
            _ => s.Tracks,
        };

        var name = @event.Type == "Created" ? @event.GetData<PlaylistCreatedData>().Name : s.Name;
        var total = tracks.Sum(t => t.Seconds);
        (string Title, int Seconds)? longest = null;
        foreach (var (title, seconds) in tracks.Select(t => (t.Title, t.Seconds)))
        {
            if (longest is not { } l || seconds > l.Seconds)
            {
                longest = (title, seconds);
            }
        }

        return new PlaylistState
        {
            Name = name,
            Tracks = tracks,
            TotalSeconds = total,
            Duration = Format(total),
            DistinctTitles = tracks.Select(t => t.Title).Distinct().Count(),
            LongestTrack = longest is var (lt, ls) ? $"{lt} ({Format(ls)})" : null,
            Pairs = [.. Pairs(tracks).Select(p => p.Second is { } second ? $"{p.First.Title}/{second.Title}" : p.First.Title)],
        };
    }

    private static List<Track> Move(List<Track> tracks, TrackMovedData move)
    {
        var copy = new List<Track>(tracks);
        var track = copy[move.From];
        copy.RemoveAt(move.From);
        copy.Insert(move.To, track);
        return copy;
    }

    private static IEnumerable<(Track First, Track? Second)> Pairs(IReadOnlyList<Track> tracks)
    {
        for (var i = 0; i < tracks.Count; i += 2)
        {
            yield return (tracks[i], i + 1 < tracks.Count ? tracks[i + 1] : null);
        }
    }

    private static string Format(int seconds) => $"{seconds / 60}:{seconds % 60:D2}";
}
