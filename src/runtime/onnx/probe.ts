/**
 * A fixed probe set for quality checks (fp32 vs int8 agreement at quantization time or at load),
 * and a helper that tokenizes it (padded into feeds by src/runtime/feeds.ts).
 */
import { loadTokenizer } from '../tokenize.js';

export const PROBE_SENTENCES: readonly string[] = [
  'The quick brown fox jumps over the lazy dog.',
  'What is the capital of France?',
  'Embeddings map pieces of text to vectors of numbers.',
  'A man is playing a guitar on stage.',
  'The stock market fell sharply on Monday after the announcement.',
  'How do I reset my password?',
  'Photosynthesis converts light energy into chemical energy.',
  'She sells sea shells by the sea shore.',
  'The committee will meet again next week to discuss the budget.',
  'Rain is expected throughout the weekend in the northern regions.',
  'Can you recommend a good book about medieval history?',
  'The new phone has a larger screen and a faster processor.',
  'Water boils at one hundred degrees Celsius at sea level.',
  'He forgot his umbrella and got soaked on the way home.',
  'Machine learning models need large amounts of training data.',
  'The museum is closed on public holidays.',
  // Beyond short English sentences: long passages (many tokens, larger activations after
  // attention), code, numbers, markup, other scripts and languages, lists and fragments. A
  // precision loss that only some inputs trigger (e.g. an int8 kernel that clips on one CPU)
  // must show up in the worst of these, not average out over easy ones.
  'In the early years of the twentieth century, the railway transformed the small market town into a busy junction, bringing workers, merchants and travellers from every corner of the country, and with them new trades, new churches and a newspaper that still appears every Thursday.',
  'The patient was admitted with a fever of 39.4 °C, a heart rate of 112 beats per minute and a blood pressure of 95/60 mmHg; blood cultures were taken before the first dose of antibiotics.',
  'def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a',
  'SELECT name, count(*) FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY name HAVING count(*) > 10;',
  "Error: ENOENT: no such file or directory, open '/var/lib/app/config.yaml' at Object.openSync (node:fs:596:3)",
  '<div class="card"><h2>Pricing</h2><p>Starts at $9.99/month, billed annually.</p></div>',
  '{"id": 4821, "status": "shipped", "items": [{"sku": "A-17", "qty": 2}, {"sku": "B-03", "qty": 1}]}',
  'Le chat dort sur le canapé pendant que la pluie tombe doucement sur les toits de Paris.',
  'Der Zug nach München fährt heute wegen Bauarbeiten mit einer Verspätung von zwanzig Minuten ab.',
  'El gobierno anunció nuevas medidas para reducir el consumo de agua durante el verano.',
  'Москва — столица России и крупнейший город страны.',
  '東京は日本の首都であり、世界で最も人口の多い都市圏の一つです。',
  'The 3rd quarter revenue rose 14.2% year over year to $4.87 billion, beating the consensus estimate of $4.71 billion.',
  'Step 1: preheat the oven to 180 degrees. Step 2: whisk the eggs and sugar. Step 3: fold in the flour and bake for 25 minutes.',
  'lol that was sooo funny 😂😂 cant believe he actually did it!!!',
  'Terms and conditions apply. Offer valid while stocks last. Not to be combined with any other promotion.',
  'Mitochondria generate most of the chemical energy needed to power the biochemical reactions of the cell, stored in adenosine triphosphate.',
  'The defendant argued that the contract was void because the plaintiff had failed to disclose material facts during the negotiations.',
  'Quantum entanglement describes correlations between particles that cannot be explained by any local hidden-variable theory.',
  'apple banana cherry date elderberry fig grape honeydew',
  'NO SMOKING IN THIS AREA. VIOLATORS WILL BE FINED.',
  'Why does my laptop fan keep running at full speed even when nothing is open?',
  'Best hiking trails near Denver with waterfalls and easy parking',
  'She had lived in the same house for sixty years, and every room held a memory: the kitchen where she had baked bread for her children, the porch where her husband had read the paper each morning, the attic full of letters she could not bring herself to throw away.',
  'Install the package with apt-get install -y postgresql-15 and start the cluster with pg_ctlcluster 15 main start.',
  'The algorithm runs in O(n log n) time and uses O(n) extra memory in the worst case.',
  'A',
  'ok',
  '?',
  '42',
  'The the the the the the the the the the the the the the the the the the the the',
  'Climate scientists warn that without rapid cuts in emissions, sea levels could rise by more than a metre by the end of the century, displacing hundreds of millions of people in low-lying coastal regions.',
  'Tickets for the concert sold out within minutes, and resale prices climbed to ten times their face value.',
  'How many grams of protein are in a cup of cooked lentils?',
  'The spacecraft entered orbit around Jupiter after a five-year journey, and its first images revealed storms larger than the Earth.',
  'Please find attached the invoice for March; payment is due within thirty days of receipt.',
  'The referee showed a red card in the 89th minute, and the home side held on to win two goals to one.',
  'Volcanic ash grounded flights across northern Europe for nearly a week in April 2010.',
  'I would like to cancel my subscription and receive a refund for the unused months.',
  'Gravity bends light, so massive galaxy clusters act as lenses that magnify more distant galaxies behind them.',
  'The recipe calls for two cups of flour, one teaspoon of salt, and a pinch of nutmeg.',
  'Parliament passed the bill by 312 votes to 290 after a debate that lasted late into the night.',
  'Wikipedia is a free online encyclopedia written collaboratively by volunteers around the world.',
  'Bitte schließen Sie die Tür, wenn Sie den Raum verlassen.',
  'The kitten chased the red ball across the wooden floor until it rolled under the sofa.',
  'Our quarterly all-hands meeting has been moved to Thursday at 3 pm in the main auditorium.',
  'Antibiotics do not work against viral infections such as the common cold or influenza.',
  'The bridge, completed in 1932, spans 503 metres and carries eight lanes of traffic and two railway lines.',
  'What are the side effects of taking ibuprofen every day for a month?',
];

/** Token ids for each text, truncated on the right, no padding. */
export async function tokenize(tokenizerPath: string, texts: readonly string[], maxLength = 128): Promise<number[][]> {
  const tok = loadTokenizer(tokenizerPath, { maxLength, direction: 'right' });
  const encodings = await Promise.all(texts.map((t) => tok.encode(t)));
  return encodings.map((e) => Array.from(e.getIds()));
}
