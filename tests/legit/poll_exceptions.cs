using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record PollState
{
    public string Question { get; init; } = "";
    public bool Open { get; init; }
    public Dictionary<string, int> Tallies { get; init; } = [];
    public List<string> Voters { get; init; } = [];
    public string? Winner { get; init; }
    public List<string> Errors { get; init; } = [];
    public int EventsSeen { get; init; }
}

public record PollOpenedData(string Question, List<string> Options);

public record VoteData(string? Voter, string? Option);

public class PollReducer : IReducer<PollState>
{
    public PollState Apply(PollState? state, Event @event)
    {
        var s = state ?? new PollState();
        var seen = s.EventsSeen;
        PollState result;
        try
        {
            result = @event.Type switch
            {
                "PollOpened" => OpenPoll(s, @event.GetData<PollOpenedData>()),
                "VoteCast" => Vote(s, @event.GetData<VoteData>()),
                "PollClosed" => s with { Open = false, Winner = Leading(s.Tallies) },
                _ => s,
            };
        }
        catch (ArgumentException ex)
        {
            result = s with { Errors = [.. s.Errors, ex.Message] };
        }
        catch (InvalidOperationException ex) when (ex.Message.Length > 0)
        {
            result = s with { Errors = [.. s.Errors, ex.Message] };
        }
        finally
        {
            seen++;
        }

        return result with { EventsSeen = seen };
    }

    private static PollState OpenPoll(PollState s, PollOpenedData data) => s with
    {
        Question = data.Question,
        Open = true,
        Tallies = data.Options.ToDictionary(o => o, _ => 0),
    };

    private static PollState Vote(PollState s, VoteData data)
    {
        var voter = data.Voter ?? throw new InvalidOperationException("vote without voter");
        if (!s.Open)
        {
            throw new InvalidOperationException("poll closed");
        }

        if (data.Option is not { } option || !s.Tallies.ContainsKey(option))
        {
            throw new ArgumentException($"unknown option: {data.Option}");
        }

        if (s.Voters.Contains(voter))
        {
            throw new InvalidOperationException($"duplicate voter: {voter}");
        }

        var tallies = new Dictionary<string, int>(s.Tallies);
        tallies[option]++;
        return s with { Tallies = tallies, Voters = [.. s.Voters, voter] };
    }

    private static string? Leading(Dictionary<string, int> tallies)
    {
        string? winner = null;
        var best = -1;
        foreach (var (option, votes) in tallies)
        {
            if (votes > best)
            {
                winner = option;
                best = votes;
            }
        }

        return winner;
    }
}
